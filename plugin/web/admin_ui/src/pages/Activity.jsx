/** Activity: the audit log of support actions, newest first. */
import {Card, DataTable, Page} from '@shopify/polaris';
import {ListBulletedIcon} from '@shopify/polaris-icons';
import {api} from '../api.js';
import {formatDate, formatNumber, formatSigned} from '../format.js';
import {t} from '../i18n.js';
import {Empty} from '../shell/Empty.jsx';
import {Loaded, useResource} from '../shell/loading.jsx';

function ActionsTable({actions}) {
  if (actions.length === 0) {
    return (
      <Empty heading={t('activity.emptyHeading')}>{t('activity.emptyBody')}</Empty>
    );
  }
  const rows = actions.map((a) => [
    formatDate(a.at),
    t(`action.${a.action}`),
    a.actor,
    formatSigned(a.points),
    `${formatNumber(a.balance_before)} → ${formatNumber(a.balance_after)}`,
    `${t(`reason.${a.reason_code}`)}: ${a.note}`,
    a.undone_by ? t('activity.undoneBy', {id: a.undone_by}) : a.undo_of ? t('activity.undoOf', {id: a.undo_of}) : '',
  ]);
  return (
    <DataTable
      columnContentTypes={['text', 'text', 'text', 'numeric', 'text', 'text', 'text']}
      headings={[t('activity.when'), t('activity.action'), t('activity.actor'), t('member.points'), t('member.balance'), t('support.reason'), t('activity.link')]}
      rows={rows}
    />
  );
}

function ActivityPage() {
  const actions = useResource(() => api.actions(), []);
  return (
    <Loaded resource={actions} title={t('nav.activity')}>
      {(data) => (
        <Page title={t('nav.activity')} subtitle={t('activity.subtitle')}>
          <Card padding="0">
            <ActionsTable actions={data.actions} />
          </Card>
        </Page>
      )}
    </Loaded>
  );
}

export const activity = {path: 'activity', label: 'nav.activity', icon: ListBulletedIcon, routes: [{pattern: /^activity$/, Component: ActivityPage}]};
