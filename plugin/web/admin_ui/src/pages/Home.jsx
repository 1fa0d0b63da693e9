/** Home: the programme's key figures from GET /api/admin/summary, and where the points went, as a chart. */
import {BlockStack, Card, InlineGrid, Layout, Page, Text} from '@shopify/polaris';
import {HomeIcon} from '@shopify/polaris-icons';
import {BarChart} from '@shopify/polaris-viz';
import {api} from '../api.js';
import {formatNumber} from '../format.js';
import {t} from '../i18n.js';
import {Loaded, useResource} from '../shell/loading.jsx';

const FIGURES = ['members', 'points_issued', 'points_reversed', 'points_redeemed', 'points_outstanding'];

function Figure({name, value}) {
  return (
    <Card>
      <BlockStack gap="200">
        <Text as="h3" variant="headingSm" tone="subdued">{t(`home.${name}`)}</Text>
        <Text as="p" variant="heading2xl" id={`figure-${name}`}>{formatNumber(value)}</Text>
      </BlockStack>
    </Card>
  );
}

function PointsChart({summary}) {
  const kinds = FIGURES.filter((name) => name !== 'members');
  const data = [{name: t('home.points'), data: kinds.map((name) => ({key: t(`home.${name}`), value: summary[name]}))}];
  return (
    <Card>
      <BlockStack gap="300">
        <Text as="h2" variant="headingMd">{t('home.chartTitle')}</Text>
        {/* polaris-viz's SVG roles are incomplete for assistive technology: it hears the figures in one label */}
        <div role="img" aria-label={kinds.map((n) => `${t(`home.${n}`)}: ${formatNumber(summary[n])}`).join(', ')}>
          <div style={{height: 280}} aria-hidden="true">
            <BarChart data={data} showLegend={false} isAnimated={false} theme="Light" />
          </div>
        </div>
      </BlockStack>
    </Card>
  );
}

function HomePage() {
  const summary = useResource(() => api.summary(), []);
  return (
    <Loaded resource={summary} title={t('nav.home')}>
      {(data) => (
        <Page title={t('nav.home')} subtitle={data.shop}>
          <Layout>
            <Layout.Section>
              <InlineGrid columns={{xs: 1, sm: 2, md: 5}} gap="400">
                {FIGURES.map((name) => <Figure key={name} name={name} value={data[name]} />)}
              </InlineGrid>
            </Layout.Section>
            <Layout.Section>
              <PointsChart summary={data} />
            </Layout.Section>
          </Layout>
        </Page>
      )}
    </Loaded>
  );
}

export const home = {path: '', label: 'nav.home', icon: HomeIcon, routes: [{pattern: /^$/, Component: HomePage}]};
