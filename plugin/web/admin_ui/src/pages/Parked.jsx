/** Parked deliveries: webhooks that could not be processed, with their reason; replay one once its cause is fixed. */
import {Button, Card, DataTable, Page} from '@shopify/polaris';
import {AlertTriangleIcon} from '@shopify/polaris-icons';
import {api} from '../api.js';
import {formatDate, formatNumber} from '../format.js';
import {t} from '../i18n.js';
import {Empty} from '../shell/Empty.jsx';
import {useToast} from '../shell/feedback.jsx';
import {Loaded, useResource} from '../shell/loading.jsx';

function ParkedTable({parked, onReplay}) {
  if (parked.length === 0) {
    return (
      <Empty heading={t('parked.emptyHeading')}>{t('parked.emptyBody')}</Empty>
    );
  }
  const rows = parked.map((d) => [
    d.topic,
    formatDate(d.received_at),
    formatNumber(d.attempts),
    d.reason,
    <Button size="slim" onClick={() => onReplay(d.id)} accessibilityLabel={t('parked.replayLabel', {id: d.id})}>{t('parked.replay')}</Button>,
  ]);
  return <DataTable columnContentTypes={['text', 'text', 'numeric', 'text', 'text']} headings={[t('parked.topic'), t('parked.received'), t('parked.attempts'), t('parked.reason'), '']} rows={rows} />;
}

function ParkedPage() {
  const toast = useToast();
  const parked = useResource(() => api.parked(), []);
  const replay = async (id) => {
    try {
      const answer = await api.replay(id);
      toast(t('parked.replayed', {status: answer.status}));
    } catch (error) {
      toast(error.message, {error: true});
    }
    parked.reload();
  };
  return (
    <Loaded resource={parked} title={t('nav.parked')}>
      {(data) => (
        <Page title={t('nav.parked')} subtitle={t('parked.subtitle')}>
          <Card padding="0">
            <ParkedTable parked={data.parked} onReplay={replay} />
          </Card>
        </Page>
      )}
    </Loaded>
  );
}

export const parked = {path: 'parked', label: 'nav.parked', icon: AlertTriangleIcon, routes: [{pattern: /^parked$/, Component: ParkedPage}]};
