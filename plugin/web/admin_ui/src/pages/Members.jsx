/** Members: find one by email or customer id (the support look-up), then open their page. */
import {useState} from 'react';
import {Banner, Button, Card, Form, FormLayout, Layout, Page, TextField} from '@shopify/polaris';
import {PersonIcon} from '@shopify/polaris-icons';
import {api} from '../api.js';
import {errorsOf} from '../fieldErrors.js';
import {t} from '../i18n.js';
import {Empty} from '../shell/Empty.jsx';
import {navigate} from '../router.js';
import {MemberPage} from './Member.jsx';

function MembersPage() {
  const [email, setEmail] = useState('');
  const [customerId, setCustomerId] = useState('');
  const [refusal, setRefusal] = useState(null);
  const [busy, setBusy] = useState(false);
  const errorAt = errorsOf(refusal);
  const find = async () => {
    setBusy(true);
    try {
      const card = await api.findMember({email: email.trim(), customerId: customerId.trim()});
      navigate(`members/${card.customer_id}`);
    } catch (error) {
      setRefusal(error);
      setBusy(false);
    }
  };
  return (
    <Page title={t('nav.members')}>
      <Layout>
        <Layout.Section>
          <Card>
            <Form onSubmit={find}>
              <FormLayout>
                <FormLayout.Group>
                  <TextField label={t('members.email')} type="email" value={email} onChange={setEmail} autoComplete="off" error={errorAt('email')} />
                  <TextField label={t('members.customerId')} inputMode="numeric" value={customerId} onChange={setCustomerId} autoComplete="off" error={errorAt('customer_id')} />
                </FormLayout.Group>
                <Button submit variant="primary" loading={busy}>{t('members.find')}</Button>
              </FormLayout>
            </Form>
          </Card>
        </Layout.Section>
        <Layout.Section>
          {refusal ? (
            <Banner tone={refusal.status === 404 ? 'info' : 'critical'} title={refusal.status === 404 ? t('members.noneFound') : undefined}>
              <p>{refusal.message}</p>
            </Banner>
          ) : (
            <Card>
              <Empty heading={t('members.emptyHeading')}>{t('members.emptyBody')}</Empty>
            </Card>
          )}
        </Layout.Section>
      </Layout>
    </Page>
  );
}

export const members = {
  path: 'members',
  label: 'nav.members',
  icon: PersonIcon,
  routes: [
    {pattern: /^members$/, Component: MembersPage},
    {pattern: /^members\/(?<customerId>\d+)$/, Component: MemberPage},
  ],
};
