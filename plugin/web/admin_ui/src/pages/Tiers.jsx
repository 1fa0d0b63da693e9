/** Tiers: the VIP tier programme with each tier's member count, edited as JSON, previewed (who moves), saved. */
import {useState} from 'react';
import {Banner, BlockStack, Button, Card, DataTable, InlineStack, Layout, Page, Text, TextField} from '@shopify/polaris';
import {PersonSegmentIcon} from '@shopify/polaris-icons';
import {api} from '../api.js';
import {formatDate, formatNumber} from '../format.js';
import {t} from '../i18n.js';
import {useToast} from '../shell/feedback.jsx';
import {Loaded, useResource} from '../shell/loading.jsx';

/** What the merchant edits: the programme without the figures the API adds (version, member counts). */
function editable(programme) {
  const {version, members_without_tier: _none, ...rest} = programme;
  return {...rest, tiers: programme.tiers.map(({members: _members, ...tier}) => tier)};
}

/** Each refusal as "field.path: message", from the API's nested per-field messages. */
function refusalLines(fields, prefix = '') {
  if (!fields || typeof fields !== 'object') return [];
  return Object.entries(fields).flatMap(([key, value]) => {
    const path = prefix ? `${prefix}.${key}` : key;
    if (Array.isArray(value)) return value.filter((m) => typeof m === 'string').map((m) => `${path}: ${m}`);
    return refusalLines(value, path);
  });
}

function TiersTable({programme}) {
  const rows = programme.tiers.map((tier) => [
    tier.name, tier.id, `${tier.threshold}`, `${tier.multiplier}×`, formatNumber(tier.members),
  ]);
  rows.unshift([t('tiers.none'), '', '', '', formatNumber(programme.members_without_tier)]);
  return (
    <DataTable
      columnContentTypes={['text', 'text', 'numeric', 'numeric', 'numeric']}
      headings={[t('tiers.name'), t('tiers.id'), t(`tiers.threshold.${programme.metric}`), t('tiers.multiplier'), t('tiers.members')]}
      rows={rows}
    />
  );
}

function PreviewTable({result}) {
  const rows = result.tiers.map((row) => [
    row.id ? row.name : t('tiers.none'), formatNumber(row.now), formatNumber(row.after),
    formatNumber(row.up), formatNumber(row.down), formatNumber(row.unchanged),
  ]);
  return (
    <BlockStack gap="300">
      {!result.complete && <Banner tone="warning">{t('tiers.partial')}</Banner>}
      <Text as="p" id="tiers-preview-summary">{t('tiers.previewSummary', {members: formatNumber(result.members), moves: formatNumber(result.moves.reduce((n, m) => n + m.members, 0))})}</Text>
      <DataTable
        columnContentTypes={['text', 'numeric', 'numeric', 'numeric', 'numeric', 'numeric']}
        headings={[t('tiers.tier'), t('tiers.now'), t('tiers.after'), t('tiers.up'), t('tiers.down'), t('tiers.unchanged')]}
        rows={rows}
      />
    </BlockStack>
  );
}

function TiersEditor({loaded, versions, reload}) {
  const toast = useToast();
  const [text, setText] = useState(JSON.stringify(editable(loaded), null, 2));
  const [refusal, setRefusal] = useState(null);
  const [preview, setPreview] = useState(null);
  const [busy, setBusy] = useState(null);

  const parsed = () => {
    try {
      return JSON.parse(text);
    } catch (error) {
      setRefusal({message: t('tiers.notJson'), lines: [String(error.message)]});
      return undefined;
    }
  };
  const run = async (which) => {
    const body = parsed();
    if (body === undefined) return;
    setBusy(which);
    try {
      if (which === 'preview') {
        const answer = await api.previewTiers(body);
        setPreview(answer);
      } else {
        const answer = await api.saveTiers(body);
        setText(JSON.stringify(editable(answer), null, 2));
        setPreview(null);
        toast(t('tiers.saved', {version: answer.version}));
        reload();
      }
      setRefusal(null);
    } catch (error) {
      const fields = which === 'preview' && error.fields ? error.fields.tiers : error.fields;
      setRefusal({message: error.message, lines: refusalLines(fields)});
      if (which === 'save') toast(t('tiers.notSaved'), {error: true});
    } finally {
      setBusy(null);
    }
  };

  const historyRows = versions.map((v) => [`${v.version}`, formatDate(v.created_at), v.actor, v.config.metric, formatNumber(v.config.tiers.length)]);
  return (
    <Page title={t('nav.tiers')} subtitle={t('tiers.version', {version: loaded.version})}>
      <Layout>
        {refusal && (
          <Layout.Section>
            <Banner tone="critical" title={refusal.message}>
              <ul id="tiers-refusal">{refusal.lines.map((line) => <li key={line}>{line}</li>)}</ul>
            </Banner>
          </Layout.Section>
        )}
        <Layout.Section>
          <Card padding="0">
            <BlockStack gap="200">
              <div style={{padding: 'var(--p-space-400) var(--p-space-400) 0'}}>
                <Text as="h2" variant="headingMd">{t('tiers.current')}</Text>
                <Text as="p" tone="subdued">{loaded.tiers.length ? t(`tiers.rule.${loaded.period}`, {metric: t(`tiers.metric.${loaded.metric}`)}) : t('tiers.noTiers')}</Text>
              </div>
              <TiersTable programme={loaded} />
            </BlockStack>
          </Card>
        </Layout.Section>
        <Layout.AnnotatedSection title={t('tiers.edit')} description={t('tiers.editHelp')}>
          <Card>
            <BlockStack gap="300">
              <TextField label={t('tiers.json')} value={text} onChange={setText} multiline={14} monospaced autoComplete="off" />
              <InlineStack gap="200">
                <Button onClick={() => run('preview')} loading={busy === 'preview'}>{t('tiers.preview')}</Button>
                <Button variant="primary" onClick={() => run('save')} loading={busy === 'save'}>{t('tiers.save')}</Button>
              </InlineStack>
            </BlockStack>
          </Card>
        </Layout.AnnotatedSection>
        <Layout.Section>
          <Card>
            <BlockStack gap="300">
              <Text as="h2" variant="headingMd">{t('tiers.whoMoves')}</Text>
              {preview ? <PreviewTable result={preview} /> : <Text as="p" tone="subdued">{t('tiers.previewHelp')}</Text>}
            </BlockStack>
          </Card>
        </Layout.Section>
        <Layout.Section>
          <Card padding="0">
            <div style={{padding: 'var(--p-space-400) var(--p-space-400) 0'}}>
              <Text as="h2" variant="headingMd">{t('tiers.history')}</Text>
            </div>
            {historyRows.length === 0 ? (
              <div style={{padding: 'var(--p-space-400)'}}><Text as="p" tone="subdued">{t('tiers.noHistory')}</Text></div>
            ) : (
              <DataTable columnContentTypes={['numeric', 'text', 'text', 'text', 'numeric']} headings={[t('tiers.versionH'), t('tiers.savedAt'), t('tiers.savedBy'), t('tiers.metricH'), t('tiers.count')]} rows={historyRows} />
            )}
          </Card>
        </Layout.Section>
      </Layout>
    </Page>
  );
}

function TiersPage() {
  const resource = useResource(() => Promise.all([api.tiers(), api.tiersHistory()]), []);
  return (
    <Loaded resource={resource} title={t('nav.tiers')}>
      {([current, history]) => <TiersEditor key={current.version} loaded={current} versions={history.versions} reload={resource.reload} />}
    </Loaded>
  );
}

export const tiers = {path: 'tiers', label: 'nav.tiers', icon: PersonSegmentIcon, routes: [{pattern: /^tiers$/, Component: TiersPage}]};
