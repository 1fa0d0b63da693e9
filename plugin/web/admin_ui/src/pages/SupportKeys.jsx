/** Support keys: API keys for a helpdesk sidebar or scripts; a key is shown once, revoking asks first. */
import {useState} from 'react';
import {Badge, Banner, BlockStack, Button, Card, DataTable, Form, FormLayout, Layout, Modal, Page, Select, Text, TextField} from '@shopify/polaris';
import {KeyIcon} from '@shopify/polaris-icons';
import {api} from '../api.js';
import {errorsOf} from '../fieldErrors.js';
import {formatDate} from '../format.js';
import {t} from '../i18n.js';
import {useToast} from '../shell/feedback.jsx';
import {Loaded, useResource} from '../shell/loading.jsx';

function NewKeyForm({onCreated}) {
  const [name, setName] = useState('');
  const [scope, setScope] = useState('read');
  const [refusal, setRefusal] = useState(null);
  const errorAt = errorsOf(refusal);
  const create = async () => {
    try {
      const key = await api.createKey({name, scope});
      setName('');
      setRefusal(null);
      onCreated(key);
    } catch (error) {
      setRefusal(error);
    }
  };
  return (
    <Card>
      <Form onSubmit={create}>
        <FormLayout>
          <Text as="h2" variant="headingMd">{t('keys.newTitle')}</Text>
          {refusal && <Banner tone="critical">{refusal.message}</Banner>}
          <FormLayout.Group>
            <TextField label={t('keys.name')} value={name} onChange={setName} autoComplete="off" maxLength={120} error={errorAt('name')} />
            <Select label={t('keys.scope')} options={[{value: 'read', label: t('keys.read')}, {value: 'write', label: t('keys.write')}]} value={scope} onChange={setScope} error={errorAt('scope')} />
          </FormLayout.Group>
          <Button submit variant="primary">{t('keys.create')}</Button>
        </FormLayout>
      </Form>
    </Card>
  );
}

function KeysTable({keys, onRevoke}) {
  if (keys.length === 0) return <Text as="p" tone="subdued">{t('keys.none')}</Text>;
  const rows = keys.map((key) => [
    key.name,
    `${key.prefix}…`,
    t(`keys.${key.scope}`),
    formatDate(key.created_at),
    key.revoked_at ? <Badge>{t('keys.revoked')}</Badge> : (
      <Button size="slim" tone="critical" onClick={() => onRevoke(key)} accessibilityLabel={t('keys.revokeLabel', {name: key.name})}>{t('keys.revoke')}</Button>
    ),
  ]);
  return <DataTable columnContentTypes={['text', 'text', 'text', 'text', 'text']} headings={[t('keys.name'), t('keys.prefix'), t('keys.scope'), t('keys.created'), '']} rows={rows} />;
}

function KeysView({keys, reload}) {
  const toast = useToast();
  const [shown, setShown] = useState(null);
  const [revoking, setRevoking] = useState(null);
  const revoke = async () => {
    try {
      await api.revokeKey(revoking.id);
      toast(t('keys.revokedToast'));
    } catch (error) {
      toast(error.message, {error: true});
    }
    setRevoking(null);
    reload();
  };
  return (
    <Page title={t('nav.keys')} subtitle={t('keys.subtitle')}>
      <Layout>
        {shown && (
          <Layout.Section>
            <Banner tone="success" title={t('keys.copyNow')} onDismiss={() => setShown(null)}>
              <TextField label={t('keys.newKey')} value={shown.key} readOnly autoComplete="off" selectTextOnFocus />
            </Banner>
          </Layout.Section>
        )}
        <Layout.Section>
          <BlockStack gap="400">
            <Card padding="0">
              <KeysTable keys={keys} onRevoke={setRevoking} />
            </Card>
            <NewKeyForm onCreated={(key) => { setShown(key); reload(); }} />
          </BlockStack>
        </Layout.Section>
      </Layout>
      <Modal
        open={Boolean(revoking)}
        onClose={() => setRevoking(null)}
        title={t('keys.revokeTitle', {name: revoking ? revoking.name : ''})}
        primaryAction={{content: t('keys.revoke'), destructive: true, onAction: revoke}}
        secondaryActions={[{content: t('cancel'), onAction: () => setRevoking(null)}]}
      >
        <Modal.Section>
          <p>{t('keys.revokeBody')}</p>
        </Modal.Section>
      </Modal>
    </Page>
  );
}

function SupportKeysPage() {
  const keys = useResource(() => api.keys(), []);
  return <Loaded resource={keys} title={t('nav.keys')}>{(data) => <KeysView keys={data.keys} reload={keys.reload} />}</Loaded>;
}

export const supportKeys = {path: 'support-keys', label: 'nav.keys', icon: KeyIcon, routes: [{pattern: /^support-keys$/, Component: SupportKeysPage}]};
