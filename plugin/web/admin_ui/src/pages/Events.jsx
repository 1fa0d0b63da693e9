/** Expiry and events: the points expiry policy, event endpoints (secret shown once, disabled notices), the log, replay. */
import {useState} from 'react';
import {Badge, Banner, BlockStack, Button, Card, DataTable, Form, FormLayout, Layout, Page, Select, Text, TextField} from '@shopify/polaris';
import {NotificationIcon} from '@shopify/polaris-icons';
import {api} from '../api.js';
import {errorsOf} from '../fieldErrors.js';
import {formatDate} from '../format.js';
import {t} from '../i18n.js';
import {useToast} from '../shell/feedback.jsx';
import {Loaded, useResource} from '../shell/loading.jsx';

const POLICIES = ['off', 'per_lot', 'inactivity'];

/** "30, 7" -> [30, 7]; anything that is not a whole number is sent as written, for the API to name. */
function parseDays(text) {
  return text.split(/[\s,;]+/).filter(Boolean).map((part) => (/^\d+$/.test(part) ? Number(part) : part));
}

function ExpiryCard({initial}) {
  const toast = useToast();
  const [policy, setPolicy] = useState(initial.policy);
  const [months, setMonths] = useState(initial.months == null ? '' : String(initial.months));
  const [days, setDays] = useState(initial.reminder_days.join(', '));
  const [refusal, setRefusal] = useState(null);
  const errorAt = errorsOf(refusal);
  const save = async () => {
    const body = {policy, months: months === '' ? null : (/^\d+$/.test(months) ? Number(months) : months), reminder_days: parseDays(days)};
    try {
      const saved = await api.saveExpiry(body);
      setRefusal(null);
      setDays(saved.reminder_days.join(', '));
      toast(t('expiry.saved'));
    } catch (error) {
      setRefusal(error);
      toast(t('expiry.notSaved'), {error: true});
    }
  };
  return (
    <Card>
      <Form onSubmit={save}>
        <FormLayout>
          <Text as="h2" variant="headingMd">{t('expiry.title')}</Text>
          <Text as="p" tone="subdued">{t('expiry.help')}</Text>
          {refusal && <Banner tone="critical">{refusal.message}</Banner>}
          <Select label={t('expiry.policy')} options={POLICIES.map((value) => ({value, label: t(`expiry.${value}`)}))} value={policy} onChange={setPolicy} error={errorAt('policy')} />
          <FormLayout.Group>
            <TextField label={t('expiry.months')} type="number" value={months} onChange={setMonths} autoComplete="off" helpText={t('expiry.monthsHelp')} error={errorAt('months')} />
            <TextField label={t('expiry.reminders')} value={days} onChange={setDays} autoComplete="off" helpText={t('expiry.remindersHelp')} error={errorAt('reminder_days')} />
          </FormLayout.Group>
          <Button submit variant="primary">{t('save')}</Button>
        </FormLayout>
      </Form>
    </Card>
  );
}

function NewEndpointForm({onCreated}) {
  const [url, setUrl] = useState('');
  const [refusal, setRefusal] = useState(null);
  const errorAt = errorsOf(refusal);
  const create = async () => {
    try {
      const created = await api.createEndpoint({url});
      setUrl('');
      setRefusal(null);
      onCreated(created);
    } catch (error) {
      setRefusal(error);
    }
  };
  return (
    <Form onSubmit={create}>
      <FormLayout>
        <TextField label={t('events.url')} value={url} onChange={setUrl} autoComplete="off" placeholder="https://" helpText={t('events.urlHelp')} error={errorAt('url')} />
        <Button submit>{t('events.register')}</Button>
      </FormLayout>
    </Form>
  );
}

function EndpointsTable({endpoints, onToggle}) {
  if (endpoints.length === 0) return <Text as="p" tone="subdued">{t('events.none')}</Text>;
  const rows = endpoints.map((endpoint) => [
    endpoint.url,
    endpoint.event_types ? endpoint.event_types.join(', ') : t('events.allTypes'),
    endpoint.active ? <Badge tone="success">{t('events.active')}</Badge> : <Badge tone="critical">{t('events.disabled')}</Badge>,
    endpoint.last_success_at ? formatDate(endpoint.last_success_at) : '—',
    <Button key="toggle" size="slim" onClick={() => onToggle(endpoint)} accessibilityLabel={t(endpoint.active ? 'events.disableLabel' : 'events.enableLabel', {url: endpoint.url})}>
      {t(endpoint.active ? 'events.disable' : 'events.enable')}
    </Button>,
  ]);
  return <DataTable columnContentTypes={['text', 'text', 'text', 'text', 'text']} headings={[t('events.url'), t('events.types'), t('events.status'), t('events.lastSuccess'), '']} rows={rows} />;
}

function DeliveryLog({deliveries, onReplay}) {
  if (deliveries.length === 0) return <Text as="p" tone="subdued">{t('events.noDeliveries')}</Text>;
  const rows = deliveries.map((d) => [
    d.event_type,
    String(d.sequence),
    formatDate(d.occurred_at),
    t(`events.status.${d.status}`),
    String(d.attempts),
    d.last_error || (d.last_status ? `HTTP ${d.last_status}` : '—'),
    <Button key="replay" size="slim" onClick={() => onReplay(d)} accessibilityLabel={t('events.replayLabel', {id: d.event_id})}>{t('events.replay')}</Button>,
  ]);
  return (
    <DataTable
      columnContentTypes={['text', 'numeric', 'text', 'text', 'numeric', 'text', 'text']}
      headings={[t('events.type'), t('events.sequence'), t('events.occurred'), t('events.statusHeading'), t('events.attempts'), t('events.answer'), '']}
      rows={rows}
    />
  );
}

function EventsView({expiry, endpoints, deliveries, reload}) {
  const toast = useToast();
  const [secret, setSecret] = useState(null);
  const toggle = async (endpoint) => {
    try {
      await (endpoint.active ? api.disableEndpoint(endpoint.id) : api.enableEndpoint(endpoint.id));
    } catch (error) {
      toast(error.message, {error: true});
    }
    reload();
  };
  const enableFlow = async () => {
    try {
      await api.enableFlow();
      toast(t('events.flowEnabled'));
    } catch (error) {
      toast(error.message, {error: true});
    }
    reload();
  };
  const replay = async (delivery) => {
    try {
      const {queued} = await api.replayEvent({event_id: delivery.event_id, endpoint_id: delivery.endpoint_id});
      toast(t('events.replayed', {count: queued}));
    } catch (error) {
      toast(error.message, {error: true});
    }
    reload();
  };
  return (
    <Page title={t('nav.events')} subtitle={t('events.subtitle')}>
      <Layout>
        {endpoints.notices.map((notice) => (
          <Layout.Section key={notice}>
            <Banner tone="critical" title={t('events.disabledTitle')}>{notice}</Banner>
          </Layout.Section>
        ))}
        {secret && (
          <Layout.Section>
            <Banner tone="success" title={t('events.copySecret')} onDismiss={() => setSecret(null)}>
              <TextField label={t('events.secret')} value={secret} readOnly autoComplete="off" selectTextOnFocus />
            </Banner>
          </Layout.Section>
        )}
        <Layout.Section>
          <BlockStack gap="400">
            <ExpiryCard initial={expiry} />
            <Card>
              <BlockStack gap="300">
                <Text as="h2" variant="headingMd">{t('events.endpoints')}</Text>
                <EndpointsTable endpoints={endpoints.endpoints} onToggle={toggle} />
                <NewEndpointForm onCreated={(created) => { setSecret(created.secret); reload(); }} />
                {!endpoints.endpoints.some((e) => e.kind === 'flow' && e.active) && (
                  <Button onClick={enableFlow}>{t('events.enableFlow')}</Button>
                )}
              </BlockStack>
            </Card>
            <Card>
              <BlockStack gap="300">
                <Text as="h2" variant="headingMd">{t('events.log')}</Text>
                <DeliveryLog deliveries={deliveries.deliveries} onReplay={replay} />
              </BlockStack>
            </Card>
          </BlockStack>
        </Layout.Section>
      </Layout>
    </Page>
  );
}

function EventsPage() {
  const loaded = useResource(() => Promise.all([api.expiry(), api.endpoints(), api.deliveries()]), []);
  return (
    <Loaded resource={loaded} title={t('nav.events')}>
      {([expiry, endpoints, deliveries]) => <EventsView expiry={expiry} endpoints={endpoints} deliveries={deliveries} reload={loaded.reload} />}
    </Loaded>
  );
}

export const events = {path: 'events', label: 'nav.events', icon: NotificationIcon, routes: [{pattern: /^events$/, Component: EventsPage}]};
