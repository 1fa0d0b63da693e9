/** Referrals: the programme and its fraud guards, the figures, and the blocked referrals support may approve. */
import {useState} from 'react';
import {Banner, BlockStack, Button, Card, Checkbox, DataTable, FormLayout, Layout, Modal, Page, Select, SkeletonBodyText, Text, TextField} from '@shopify/polaris';
import {PersonAddIcon} from '@shopify/polaris-icons';
import {api} from '../api.js';
import {errorsOf} from '../fieldErrors.js';
import {formatDate, formatNumber} from '../format.js';
import {optional, whole} from '../input.js';
import {rewardOptions} from '../rewardOptions.js';
import {t} from '../i18n.js';
import {Empty} from '../shell/Empty.jsx';
import {UnsavedChangesBar, useToast} from '../shell/feedback.jsx';
import {Loaded, useResource} from '../shell/loading.jsx';

const KINDS = ['fixed_amount', 'percentage', 'free_shipping'];
const GUARDS = ['block_same_customer', 'block_same_email', 'block_same_address', 'block_same_phone', 'first_order_only'];
const COUNTS = ['links_opened', 'friend_codes_issued', 'first_orders', 'rewards_given', 'rewards_pending', 'void', 'reversed', 'blocked', 'points_given'];
const REASONS = ['same_customer', 'same_email', 'same_address', 'same_phone', 'not_first_order', 'monthly_cap', 'daily_velocity'];

const text = (value) => (value === null || value === undefined ? '' : String(value));
const orNull = (value) => (text(value).trim() === '' ? null : whole(value));

/** The settings as the API takes them, from the form's values (text fields hold strings). */
function toRequest(form) {
  return {
    ...form,
    advocate_points: whole(form.advocate_points),
    advocate_reward: form.advocate_reward || null,
    friend_reward_amount: text(form.friend_reward_amount).trim(),
    friend_reward_percent: text(form.friend_reward_percent).trim(),
    friend_min_subtotal: optional(form.friend_min_subtotal),
    friend_code_days: whole(form.friend_code_days),
    friend_codes_per_day: whole(form.friend_codes_per_day),
    monthly_cap: orNull(form.monthly_cap),
    daily_limit: orNull(form.daily_limit),
  };
}
const canonical = (value) => JSON.stringify(Object.fromEntries(Object.entries(value).sort()));

function SettingsCard({loaded, rewards, onSaved}) {
  const toast = useToast();
  const [saved, setSaved] = useState(loaded);
  const [form, setForm] = useState(loaded.settings);
  const [refusal, setRefusal] = useState(null);
  const [saving, setSaving] = useState(false);
  const errorAt = errorsOf(refusal);
  const dirty = canonical(toRequest(form)) !== canonical(toRequest(saved.settings));
  const set = (name) => (value) => setForm({...form, [name]: value});
  const field = (name, props = {}) => (
    <TextField label={t(`referrals.${name}`)} value={text(form[name])} onChange={set(name)} autoComplete="off" error={errorAt(name)} {...props} />
  );
  const save = async () => {
    setSaving(true);
    try {
      const answer = await api.saveReferralSettings(toRequest(form));
      setSaved(answer);
      setForm(answer.settings);
      setRefusal(null);
      toast(t('referrals.saved', {version: answer.version}));
      onSaved();
    } catch (error) {
      setRefusal(error);
      toast(t('referrals.notSaved'), {error: true});
    } finally {
      setSaving(false);
    }
  };
  return (
    <>
      <UnsavedChangesBar dirty={dirty} saving={saving} onSave={save} onDiscard={() => (setForm(saved.settings), setRefusal(null))} />
      {refusal && <Layout.Section><Banner tone="critical" title={t('referrals.notSaved')}><p>{refusal.message}</p></Banner></Layout.Section>}
      <Layout.AnnotatedSection title={t('referrals.programme')} description={t('referrals.programmeHelp')}>
        <Card>
          <FormLayout>
            <Checkbox label={t('referrals.enabled')} checked={Boolean(form.enabled)} onChange={set('enabled')} error={errorAt('enabled')} />
            {field('advocate_points', {type: 'number', inputMode: 'numeric', helpText: t('referrals.advocatePointsHelp')})}
            <Select label={t('referrals.advocate_reward')} options={rewardOptions(rewards, form.advocate_reward)} value={text(form.advocate_reward)}
              onChange={set('advocate_reward')} error={errorAt('advocate_reward')} helpText={t('referrals.advocateRewardHelp')} />
            <FormLayout.Group>
              <Select label={t('referrals.friend_reward_kind')} options={KINDS.map((k) => ({value: k, label: t(`kind.${k}`)}))} value={form.friend_reward_kind} onChange={set('friend_reward_kind')} error={errorAt('friend_reward_kind')} />
              {form.friend_reward_kind === 'fixed_amount' && field('friend_reward_amount', {inputMode: 'decimal'})}
              {form.friend_reward_kind === 'percentage' && field('friend_reward_percent', {inputMode: 'decimal', suffix: '%'})}
            </FormLayout.Group>
            <FormLayout.Group>
              {field('friend_min_subtotal', {inputMode: 'decimal'})}
              {field('friend_code_days', {type: 'number', inputMode: 'numeric'})}
            </FormLayout.Group>
          </FormLayout>
        </Card>
      </Layout.AnnotatedSection>
      <Layout.AnnotatedSection title={t('referrals.guards')} description={t('referrals.guardsHelp')}>
        <Card>
          <FormLayout>
            {GUARDS.map((name) => (
              <Checkbox key={name} label={t(`referrals.${name}`)} checked={Boolean(form[name])} onChange={set(name)} error={errorAt(name)} />
            ))}
            <FormLayout.Group>
              {field('monthly_cap', {type: 'number', inputMode: 'numeric', helpText: t('referrals.noLimitHelp')})}
              {field('daily_limit', {type: 'number', inputMode: 'numeric', helpText: t('referrals.noLimitHelp')})}
            </FormLayout.Group>
            {field('friend_codes_per_day', {type: 'number', inputMode: 'numeric', helpText: t('referrals.codesPerDayHelp')})}
          </FormLayout>
        </Card>
      </Layout.AnnotatedSection>
    </>
  );
}

function Figures({stats}) {
  const rows = [
    ...COUNTS.map((name) => [t(`referrals.stat.${name}`), formatNumber(stats[name])]),
    ...REASONS.filter((r) => stats[`blocked_${r}`] > 0).map((r) => [t('referrals.blockedFor', {reason: t(`referrals.reason.${r}`)}), formatNumber(stats[`blocked_${r}`])]),
  ];
  return (
    <Card padding="0">
      <DataTable columnContentTypes={['text', 'numeric']} headings={[t('referrals.figure'), t('referrals.value')]} rows={rows} />
    </Card>
  );
}

function Blocked({referrals, onApprove}) {
  if (referrals.length === 0) return <Card><Empty heading={t('referrals.noBlockedHeading')}>{t('referrals.noBlockedBody')}</Empty></Card>;
  const rows = referrals.map((r) => [
    String(r.order_id),
    String(r.advocate_member_id),
    formatDate(r.ordered_at),
    t(`referrals.reason.${r.block_reason}`),
    <Button size="slim" onClick={() => onApprove(r)} accessibilityLabel={t('referrals.approveLabel', {order: r.order_id})}>{t('referrals.approve')}</Button>,
  ]);
  return (
    <Card padding="0">
      <DataTable columnContentTypes={['text', 'text', 'text', 'text', 'text']} headings={[t('referrals.order'), t('referrals.advocate'), t('referrals.ordered'), t('referrals.reasonH'), '']} rows={rows} />
    </Card>
  );
}

function ApproveModal({referral, onClose, onDone}) {
  const toast = useToast();
  const [reason, setReason] = useState('');
  const [refusal, setRefusal] = useState(null);
  const [busy, setBusy] = useState(false);
  const approve = async () => {
    setBusy(true);
    try {
      await api.approveReferral(referral.order_id, reason.trim());
      toast(t('referrals.approved', {order: referral.order_id}));
      onDone();
    } catch (error) {
      setRefusal(error);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Modal open title={t('referrals.approveTitle', {order: referral.order_id})} onClose={onClose}
      primaryAction={{content: t('referrals.approve'), onAction: approve, loading: busy, disabled: reason.trim().length < 3}}
      secondaryActions={[{content: t('cancel'), onAction: onClose}]}>
      <Modal.Section>
        <BlockStack gap="300">
          <Text as="p">{referral.block_explanation}</Text>
          <TextField label={t('referrals.approveReason')} value={reason} onChange={setReason} autoComplete="off" multiline={2}
            helpText={t('referrals.approveHelp')} error={errorsOf(refusal)('reason') || (refusal && !refusal.fields ? refusal.message : undefined)} />
        </BlockStack>
      </Modal.Section>
    </Modal>
  );
}

/** One part of the page: a skeleton while its data comes, the refusal if it cannot, then the part. */
function Part({resource, children}) {
  if (resource.error) return <Banner tone="critical" title={t('couldNotLoad')}><p>{resource.error.message}</p></Banner>;
  if (resource.data === undefined) return <Card><SkeletonBodyText lines={4} /></Card>;
  return children(resource.data);
}

function ReferralsPage() {
  // The referral settings, and the catalogue the advocate's reward is chosen from.
  const settings = useResource(() => Promise.all([api.referralSettings(), api.settings()])
    .then(([referral, shop]) => ({...referral, rewards: shop.settings.rewards})), []);
  const stats = useResource(() => api.referralStats(), []);
  const blocked = useResource(() => api.referrals('blocked'), []);
  const [approving, setApproving] = useState(null);
  const reload = () => {
    stats.reload();
    blocked.reload();
  };
  return (
    <Loaded resource={settings} title={t('nav.referrals')}>
      {(loaded) => (
        <Page title={t('nav.referrals')} subtitle={t('referrals.subtitle', {version: loaded.version})}>
          <Layout>
            <SettingsCard loaded={loaded} rewards={loaded.rewards} onSaved={reload} />
            <Layout.AnnotatedSection title={t('referrals.figures')} description={t('referrals.figuresHelp')}>
              <Part resource={stats}>{(data) => <Figures stats={data.shop} />}</Part>
            </Layout.AnnotatedSection>
            <Layout.AnnotatedSection title={t('referrals.blocked')} description={t('referrals.blockedHelp')}>
              <Part resource={blocked}>{(data) => <Blocked referrals={data.referrals} onApprove={setApproving} />}</Part>
            </Layout.AnnotatedSection>
          </Layout>
          {approving && <ApproveModal referral={approving} onClose={() => setApproving(null)} onDone={() => (setApproving(null), reload())} />}
        </Page>
      )}
    </Loaded>
  );
}

export const referrals = {path: 'referrals', label: 'nav.referrals', icon: PersonAddIcon, routes: [{pattern: /^referrals$/, Component: ReferralsPage}]};
