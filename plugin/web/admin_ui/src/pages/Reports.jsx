/** Reports: the liability roll-forward and its tie-out, breakage and deferred revenue, the journal, the KPIs. */
import {useState} from 'react';
import {Banner, BlockStack, Button, Card, DataTable, InlineGrid, InlineStack, Layout, Page, Text, TextField} from '@shopify/polaris';
import {ChartVerticalIcon} from '@shopify/polaris-icons';
import {BarChart} from '@shopify/polaris-viz';
import {api} from '../api.js';
import {errorsOf} from '../fieldErrors.js';
import {formatNumber} from '../format.js';
import {t} from '../i18n.js';
import {Loaded, useResource} from '../shell/loading.jsx';

const rate = (value) => (value == null ? t('reports.notYet') : `${(Number(value) * 100).toFixed(2)} %`);

/** Every report of one period at once, so the page's figures always agree with each other. */
async function loadAll(params) {
  const [liability, breakage, kpis] = await Promise.all(
    ['liability', 'breakage', 'kpis'].map((name) => api.report(name, params)),
  );
  return {liability, breakage, kpis};
}

function Figure({id, label, value, help}) {
  return (
    <Card>
      <BlockStack gap="200">
        <Text as="h3" variant="headingSm" tone="subdued">{label}</Text>
        <Text as="p" variant="headingXl" id={id}>{value}</Text>
        {help && <Text as="p" tone="subdued">{help}</Text>}
      </BlockStack>
    </Card>
  );
}

function Chart({title, label, data, legend}) {
  return (
    <Card>
      <BlockStack gap="300">
        <Text as="h2" variant="headingMd">{title}</Text>
        {/* polaris-viz's SVG roles are incomplete for assistive technology: it hears the figures in one label */}
        <div role="img" aria-label={label}>
          <div style={{height: 260}} aria-hidden="true">
            <BarChart data={data} showLegend={false} isAnimated={false} theme="Light" />
          </div>
        </div>
        {legend && <Text as="p" tone="subdued">{legend}</Text>}
      </BlockStack>
    </Card>
  );
}

function Liability({report}) {
  const row = (label, figure) => [label, formatNumber(figure.points), figure.money];
  const rows = [
    row(t('reports.opening'), report.opening),
    ...report.lines.map((line) => row(line.label, line)),
    row(t('reports.closing'), report.closing),
    row(t('reports.pending'), report.pending),
  ];
  const tie = report.tie_out;
  return (
    <Card>
      <BlockStack gap="300">
        <Text as="h2" variant="headingMd">{t('reports.liability')}</Text>
        <Text as="p" tone="subdued" id="point-value">
          {t('reports.valueFrom', {value: report.point_value, source: t(`reports.source.${report.point_value_source}`)})}
        </Text>
        <DataTable
          columnContentTypes={['text', 'numeric', 'numeric']}
          headings={[t('reports.line'), t('reports.points'), `${t('reports.money')}${report.currency ? ` (${report.currency})` : ''}`]}
          rows={rows}
        />
        <Banner tone={tie.ok ? 'success' : 'critical'}>
          <p id="tie-out">
            {tie.ok
              ? t('reports.tieOutOk', {points: formatNumber(tie.closing)})
              : t('reports.tieOutFailed', {difference: formatNumber(tie.difference)})}
          </p>
        </Banner>
      </BlockStack>
    </Card>
  );
}

function Breakage({report}) {
  const rows = report.cohorts.map((c) => [
    c.month, formatNumber(c.issued), formatNumber(c.redeemed_12), rate(c.breakage_12), formatNumber(c.redeemed_24), rate(c.breakage_24),
  ]);
  return (
    <Card>
      <BlockStack gap="300">
        <Text as="h2" variant="headingMd">{t('reports.breakage')}</Text>
        <InlineGrid columns={{xs: 1, md: 4}} gap="300">
          <Figure id="breakage-12" label={t('reports.breakage12')} value={rate(report.breakage_12)} />
          <Figure id="breakage-24" label={t('reports.breakage24')} value={rate(report.breakage_24)} />
          <Figure id="breakage-expected" label={t('reports.expected')} value={rate(report.expected_breakage)} />
          <Figure id="contract-liability" label={t('reports.contractLiability')} value={`${report.contract_liability} ${report.currency || ''}`} />
        </InlineGrid>
        {rows.length > 0 && (
          <DataTable
            columnContentTypes={['text', 'numeric', 'numeric', 'numeric', 'numeric', 'numeric']}
            headings={[t('reports.cohort'), t('reports.issued'), t('reports.redeemed12'), t('reports.breakage12'), t('reports.redeemed24'), t('reports.breakage24')]}
            rows={rows}
          />
        )}
      </BlockStack>
    </Card>
  );
}

function Kpis({report}) {
  const totals = report.totals;
  const series = [
    {name: t('reports.issuedSeries'), data: report.months.map((m) => ({key: m.month, value: m.points_issued}))},
    {name: t('reports.redeemedSeries'), data: report.months.map((m) => ({key: m.month, value: m.points_redeemed}))},
  ];
  const pointsLabel = report.months
    .map((m) => `${m.month}: ${formatNumber(m.points_issued)} / ${formatNumber(m.points_redeemed)}`)
    .join(', ');
  const funnel = report.referrals;
  const steps = ['links_opened', 'friend_codes_issued', 'first_orders', 'qualified', 'rewarded'];
  const funnelData = [{name: t('reports.funnel'), data: steps.map((step) => ({key: t(`reports.funnel.${step}`), value: funnel[step]}))}];
  const funnelLabel = steps.map((step) => `${t(`reports.funnel.${step}`)}: ${formatNumber(funnel[step])}`).join(', ');
  const tiers = report.tiers;
  const tierData = [{name: t('reports.members'), data: tiers.distribution.map((d) => ({key: d.name, value: d.members}))}];
  const tierLabel = tiers.distribution.map((d) => `${d.name}: ${formatNumber(d.members)}`).join(', ');
  return (
    <BlockStack gap="400">
      <InlineGrid columns={{xs: 1, sm: 2, md: 5}} gap="300">
        <Figure id="kpi-members" label={t('reports.members')} value={formatNumber(totals.members)} />
        <Figure id="kpi-active-30" label={t('reports.active30')} value={formatNumber(totals.active_30)} />
        <Figure id="kpi-active-90" label={t('reports.active90')} value={formatNumber(totals.active_90)} />
        <Figure id="kpi-redemption-rate" label={t('reports.redemptionRate')} value={rate(totals.redemption_rate)} />
        <Figure id="kpi-nps" label={t('reports.nps')} value={totals.nps == null ? '–' : String(totals.nps)}
          help={t('reports.npsResponses', {count: formatNumber(totals.nps_responses)})} />
      </InlineGrid>
      <InlineGrid columns={{xs: 1, sm: 2, md: 4}} gap="300">
        <Figure id="kpi-repeat" label={t('reports.repeatRate')}
          value={`${rate(totals.repeat_rate_redeemers)} / ${rate(totals.repeat_rate_non_redeemers)}`} help={t('reports.redeemersVsOthers')} />
        <Figure id="kpi-aov" label={t('reports.aov')}
          value={`${totals.aov_redeemers} / ${totals.aov_non_redeemers}`} help={t('reports.redeemersVsOthers')} />
        <Figure id="kpi-roi" label={t('reports.roi')} value={totals.roi == null ? '–' : `× ${totals.roi}`}
          help={t('reports.roiHelp', {revenue: totals.reward_order_revenue, cost: totals.reward_cost})} />
        <Figure id="kpi-reward-orders" label={t('reports.rewardOrders')} value={formatNumber(totals.reward_orders)} />
      </InlineGrid>
      <Chart title={t('reports.funnel')} label={`${t('reports.funnel')}: ${funnelLabel}`} data={funnelData} />
      <Chart title={t('reports.pointsByMonth')} label={`${t('reports.pointsByMonth')}: ${pointsLabel}`} data={series}
        legend={`■ ${t('reports.issuedSeries')}   ■ ${t('reports.redeemedSeries')}`} />
      <Chart title={t('reports.tiers')} label={`${t('reports.tiers')}: ${tierLabel}`} data={tierData} />
      <Text as="p" tone="subdued" id="tier-moves">
        {t('reports.tierMoves', {moves: formatNumber(tiers.moves), up: formatNumber(tiers.moves_up), down: formatNumber(tiers.moves_down)})}
      </Text>
    </BlockStack>
  );
}

function ReportsPage() {
  const [form, setForm] = useState({start: '', end: '', point_value: ''});
  const [params, setParams] = useState({});
  const [downloadError, setDownloadError] = useState(null);
  const resource = useResource(() => loadAll(params), [params]);
  const errorAt = errorsOf(resource.error);
  const set = (name) => (value) => setForm({...form, [name]: value});
  const download = (name) => () => api.reportCsv(name, params).then(() => setDownloadError(null), setDownloadError);
  const filters = (
    <Card>
      <form onSubmit={(event) => { event.preventDefault(); setParams({...form}); }}>
        <InlineStack gap="300" blockAlign="end">
          <TextField label={t('reports.start')} type="date" value={form.start} onChange={set('start')} autoComplete="off" error={errorAt('start')} />
          <TextField label={t('reports.end')} type="date" value={form.end} onChange={set('end')} autoComplete="off" error={errorAt('end')} />
          <TextField label={t('reports.pointValue')} value={form.point_value} onChange={set('point_value')} autoComplete="off"
            helpText={t('reports.pointValueHelp')} error={errorAt('point_value')} />
          <Button submit variant="primary">{t('reports.apply')}</Button>
        </InlineStack>
      </form>
    </Card>
  );
  const refused = resource.error && resource.error.status === 400;
  return (
    <Page title={t('nav.reports')} subtitle={t('reports.subtitle')}>
      <Layout>
        <Layout.Section>{filters}</Layout.Section>
        {refused ? (
          <Layout.Section>
            <Banner tone="critical" title={t('reports.refused')}><p>{resource.error.message}</p></Banner>
          </Layout.Section>
        ) : (
          <Layout.Section>
            <Loaded resource={resource} title={t('nav.reports')}>
              {(data) => (
                <BlockStack gap="400">
                  <Text as="p" id="report-period">{`${data.liability.period.start} – ${data.liability.period.end} (${data.liability.period.time_zone})`}</Text>
                  <Kpis report={data.kpis} />
                  <Liability report={data.liability} />
                  <Breakage report={data.breakage} />
                  <Card>
                    <BlockStack gap="300">
                      <Text as="h2" variant="headingMd">{t('reports.journal')}</Text>
                      <Text as="p" tone="subdued">{t('reports.journalHelp')}</Text>
                      {downloadError && <Banner tone="critical"><p>{downloadError.message}</p></Banner>}
                      <InlineStack gap="300">
                        <Button onClick={download('journal')}>{t('reports.downloadJournal')}</Button>
                        <Button onClick={download('liability')}>{t('reports.downloadLiability')}</Button>
                        <Button onClick={download('kpis')}>{t('reports.downloadKpis')}</Button>
                      </InlineStack>
                    </BlockStack>
                  </Card>
                </BlockStack>
              )}
            </Loaded>
          </Layout.Section>
        )}
      </Layout>
    </Page>
  );
}

export const reports = {
  path: 'reports',
  label: 'nav.reports',
  icon: ChartVerticalIcon,
  routes: [{pattern: /^reports$/, Component: ReportsPage}],
};
