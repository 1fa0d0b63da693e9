/** Settings: earning basics, pending days, the spent-points policy and the rewards catalogue, saved as a new version. */
import {useState} from 'react';
import {Banner, BlockStack, Box, Button, Card, Checkbox, FormLayout, InlineStack, Layout, Page, Select, Text, TextField} from '@shopify/polaris';
import {SettingsIcon} from '@shopify/polaris-icons';
import {api} from '../api.js';
import {errorsOf} from '../fieldErrors.js';
import {optional, whole} from '../input.js';
import {t} from '../i18n.js';
import {UnsavedChangesBar, useToast} from '../shell/feedback.jsx';
import {Loaded, useResource} from '../shell/loading.jsx';

const EARNING_SWITCHES = ['include_shipping', 'include_taxes', 'include_tips', 'include_gift_cards', 'earn_on_test_orders', 'guest_orders_earn_by_email'];
const POLICIES = ['allow_negative', 'stop_at_zero', 'claw_back'];
const KINDS = ['fixed_amount', 'percentage', 'free_shipping', 'free_product', 'store_credit', 'cash_back'];
// Kinds that put money in the customer's store-credit account: no code, so no code conditions (docs/store-credit.md).
const CREDIT_KINDS = ['store_credit', 'cash_back'];
const HAS_AMOUNT = ['fixed_amount', ...CREDIT_KINDS];
const ITEM_KINDS = ['fixed_amount', 'percentage']; // what an amount or a percentage comes off: chosen items, or all
const ITEM_FIELDS = ['collection_ids', 'product_ids', 'variant_ids'];
const PERIODS = ['lifetime', 'day', 'week', 'month', 'year'];
const NEW_REWARD = {id: '', kind: 'fixed_amount', points: '', title: null, amount: null, percent: null, min_subtotal: null, lifetime_days: 30, customer_only: true, single_use: true};


/** The settings as the API takes them, from the form's values (text fields hold strings). */
function toRequest(form) {
  return {
    ...form,
    earn: {points: whole(form.earn.points), per_amount: String(form.earn.per_amount).trim()},
    pending_days: whole(form.pending_days),
    rewards: form.rewards.map((reward) => withoutEmpty({
      ...reward,
      points: whole(reward.points),
      lifetime_days: whole(reward.lifetime_days),
      title: optional(reward.title),
      amount: HAS_AMOUNT.includes(reward.kind) ? optional(reward.amount) : null,
      percent: reward.kind === 'percentage' ? optional(reward.percent) : null,
      min_subtotal: CREDIT_KINDS.includes(reward.kind) ? null : optional(reward.min_subtotal),
      variant_id: reward.kind === 'free_product' ? given(reward.variant_id) : null,
      min_points: reward.kind === 'cash_back' ? optionalWhole(reward.min_points) : null,
      max_points: reward.kind === 'cash_back' ? optionalWhole(reward.max_points) : null,
      per_customer_limit: optionalWhole(reward.per_customer_limit),
      per_customer_period: optionalWhole(reward.per_customer_limit) === null ? null : reward.per_customer_period || 'lifetime',
      total_available: optionalWhole(reward.total_available),
      available_from: given(reward.available_from),
      available_until: given(reward.available_until),
      ...Object.fromEntries(ITEM_FIELDS.map((name) => [name, ITEM_KINDS.includes(reward.kind) ? ids(reward[name]) : []])),
    })),
  };
}

// The API leaves out optional reward fields that are unset: so does the form, or an untouched catalogue looks changed.
const OPTIONAL = ['variant_id', 'min_points', 'max_points', 'per_customer_limit', 'per_customer_period', 'total_available',
  'available_from', 'available_until', 'collection_ids', 'product_ids', 'variant_ids'];
const isEmpty = (v) => v === null || (Array.isArray(v) && v.length === 0);
const withoutEmpty = (reward) => Object.fromEntries(Object.entries(reward).filter(([k, v]) => !(OPTIONAL.includes(k) && isEmpty(v))));
// Fields a reward never had are undefined: the same as left empty.
const given = (value) => (value === undefined ? null : optional(value));
const optionalWhole = (value) => (given(value) === null ? null : whole(value));
// Item ids are typed one per line (or separated by commas); the API takes lists of Shopify global ids.
const ids = (value) => (Array.isArray(value) ? value : String(value || '').split(/[\s,]+/).filter(Boolean));

// Key order differs between what the API answers (sorted) and what the form builds: compare sorted.
const canonical = (value) => JSON.stringify(value, (_, v) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort()) : v));

const text = (value) => (value === null || value === undefined ? '' : String(value));

function RewardCard({reward, index, errorAt, onChange, onRemove}) {
  const set = (name) => (value) => onChange({...reward, [name]: value});
  const field = (name, props = {}) => (
    <TextField label={t(`reward.${name}`)} value={text(reward[name])} onChange={set(name)} autoComplete="off" error={errorAt('rewards', index, name)} {...props} />
  );
  const itemField = (name) => field(name, {multiline: 2, helpText: t('reward.itemsHelp'), value: Array.isArray(reward[name]) ? reward[name].join('\n') : text(reward[name])});
  const heading = t('reward.heading', {n: index + 1});
  const credit = CREDIT_KINDS.includes(reward.kind);
  const amountLabel = reward.kind === 'store_credit' ? t('reward.creditAmount') : reward.kind === 'cash_back' ? t('reward.creditPerStep') : t('reward.amount');
  return (
    <Card>
      <BlockStack gap="300">
        <InlineStack align="space-between" blockAlign="center">
          <Text as="h3" variant="headingSm">{heading}</Text>
          <Button tone="critical" variant="plain" onClick={onRemove} accessibilityLabel={t('reward.removeLabel', {n: index + 1})}>{t('reward.remove')}</Button>
        </InlineStack>
        {errorAt('rewards', index) && <Banner tone="critical">{errorAt('rewards', index)}</Banner>}
        <FormLayout>
          <FormLayout.Group>
            {field('id', {helpText: t('reward.idHelp')})}
            {field('title', {placeholder: reward.title === null ? '' : undefined})}
          </FormLayout.Group>
          <FormLayout.Group>
            <Select label={t('reward.kind')} options={KINDS.map((k) => ({value: k, label: t(`kind.${k}`)}))} value={reward.kind} onChange={set('kind')} error={errorAt('rewards', index, 'kind')} />
            {field('points', {type: 'number', inputMode: 'numeric', label: reward.kind === 'cash_back' ? t('reward.pointsPerStep') : t('reward.points')})}
          </FormLayout.Group>
          <FormLayout.Group>
            {HAS_AMOUNT.includes(reward.kind) && field('amount', {inputMode: 'decimal', label: amountLabel})}
            {reward.kind === 'percentage' && field('percent', {inputMode: 'decimal', suffix: '%'})}
            {reward.kind === 'free_product' && field('variant_id', {helpText: t('reward.variantHelp')})}
            {!credit && field('min_subtotal', {inputMode: 'decimal'})}
            {field('lifetime_days', {type: 'number', inputMode: 'numeric', label: credit ? t('reward.creditLifetime') : t('reward.lifetime_days')})}
          </FormLayout.Group>
          {reward.kind === 'cash_back' && (
            <FormLayout.Group>
              {field('min_points', {type: 'number', inputMode: 'numeric', helpText: t('reward.minPointsHelp')})}
              {field('max_points', {type: 'number', inputMode: 'numeric'})}
            </FormLayout.Group>
          )}
          {ITEM_KINDS.includes(reward.kind) && (
            <FormLayout.Group>
              {itemField('collection_ids')}
              {itemField('product_ids')}
              {itemField('variant_ids')}
            </FormLayout.Group>
          )}
          <FormLayout.Group>
            {field('per_customer_limit', {type: 'number', inputMode: 'numeric'})}
            <Select label={t('reward.per_customer_period')} options={PERIODS.map((k) => ({value: k, label: t(`period.${k}`)}))} value={reward.per_customer_period || 'lifetime'} onChange={set('per_customer_period')} error={errorAt('rewards', index, 'per_customer_period')} />
            {field('total_available', {type: 'number', inputMode: 'numeric'})}
          </FormLayout.Group>
          <FormLayout.Group>
            {field('available_from', {helpText: t('reward.whenHelp')})}
            {field('available_until', {helpText: t('reward.whenHelp')})}
          </FormLayout.Group>
          {credit ? (
            <Text as="p" tone="subdued">{t('reward.creditHelp')}</Text>
          ) : (
            <>
              <Checkbox label={t('reward.customer_only')} checked={Boolean(reward.customer_only)} onChange={set('customer_only')} error={errorAt('rewards', index, 'customer_only')} />
              <Checkbox label={t('reward.single_use')} checked={Boolean(reward.single_use)} onChange={set('single_use')} error={errorAt('rewards', index, 'single_use')} />
            </>
          )}
        </FormLayout>
      </BlockStack>
    </Card>
  );
}

/** The language postings' explanations are shown in (widget and support history): the shop's own, saved apart
 * from the versioned programme (docs/earning-rules.md, "Explanations in the shop's language"). */
function LanguageSection() {
  const toast = useToast();
  const loaded = useResource(() => api.locale(), []);
  const [choice, setChoice] = useState(null);
  const [refusal, setRefusal] = useState(null);
  const [saving, setSaving] = useState(false);
  const current = loaded.data;
  if (!current) return null;
  const value = choice ?? current.locale;
  // The shop's own locale stays a choice even when no catalogue has its language (it then reads in English).
  const options = [...new Set([...current.languages, current.locale])].map((code) => ({value: code, label: t(`language.${code}`) === `language.${code}` ? code : t(`language.${code}`)}));
  const save = async () => {
    setSaving(true);
    try {
      await api.saveLocale(value);
      loaded.reload();
      setChoice(null);
      setRefusal(null);
      toast(t('settings.languageSaved'));
    } catch (error) {
      setRefusal(error);
    } finally {
      setSaving(false);
    }
  };
  return (
    <Layout.AnnotatedSection title={t('settings.language')} description={t('settings.languageHelp')}>
      <Card>
        <FormLayout>
          <Select label={t('settings.languageLabel')} options={options} value={value} onChange={setChoice} error={errorsOf(refusal)('locale')} />
          <Box>
            <Button onClick={save} loading={saving} disabled={value === current.locale}>{t('settings.saveLanguage')}</Button>
          </Box>
        </FormLayout>
      </Card>
    </Layout.AnnotatedSection>
  );
}

function SettingsForm({loaded}) {
  const toast = useToast();
  const [saved, setSaved] = useState(loaded);
  const [form, setForm] = useState(loaded.settings);
  const [refusal, setRefusal] = useState(null);
  const [saving, setSaving] = useState(false);
  const errorAt = errorsOf(refusal);
  const dirty = canonical(toRequest(form)) !== canonical(saved.settings);
  const set = (name) => (value) => setForm({...form, [name]: value});
  const setEarn = (name) => (value) => setForm({...form, earn: {...form.earn, [name]: value}});
  const setRewards = (rewards) => setForm({...form, rewards});

  const save = async () => {
    setSaving(true);
    try {
      const answer = await api.saveSettings(toRequest(form));
      setSaved(answer);
      setForm(answer.settings);
      setRefusal(null);
      toast(t('settings.saved', {version: answer.version}));
    } catch (error) {
      setRefusal(error);
      toast(t('settings.notSaved'), {error: true});
    } finally {
      setSaving(false);
    }
  };
  const discard = () => {
    setForm(saved.settings);
    setRefusal(null);
  };

  return (
    <Page title={t('nav.settings')} subtitle={t('settings.version', {version: saved.version})}>
      <UnsavedChangesBar dirty={dirty} saving={saving} onSave={save} onDiscard={discard} />
      <Layout>
        {refusal && (
          <Layout.Section>
            <Banner tone="critical" title={t('settings.notSaved')}>
              <p>{refusal.message}</p>
            </Banner>
          </Layout.Section>
        )}
        <Layout.AnnotatedSection title={t('settings.earning')} description={t('settings.earningHelp')}>
          <Card>
            <FormLayout>
              <FormLayout.Group>
                <TextField label={t('settings.earnPoints')} type="number" inputMode="numeric" value={text(form.earn.points)} onChange={setEarn('points')} autoComplete="off" error={errorAt('earn', 'points')} />
                <TextField label={t('settings.perAmount')} inputMode="decimal" value={text(form.earn.per_amount)} onChange={setEarn('per_amount')} autoComplete="off" error={errorAt('earn', 'per_amount')} />
              </FormLayout.Group>
              {EARNING_SWITCHES.map((name) => (
                <Checkbox key={name} label={t(`settings.${name}`)} checked={Boolean(form[name])} onChange={set(name)} error={errorAt(name)} />
              ))}
            </FormLayout>
          </Card>
        </Layout.AnnotatedSection>
        <Layout.AnnotatedSection title={t('settings.spending')} description={t('settings.spendingHelp')}>
          <Card>
            <FormLayout>
              <TextField label={t('settings.pendingDays')} type="number" inputMode="numeric" value={text(form.pending_days)} onChange={set('pending_days')} autoComplete="off" helpText={t('settings.pendingDaysHelp')} error={errorAt('pending_days')} />
              <Select label={t('settings.policy')} options={POLICIES.map((p) => ({value: p, label: t(`policy.${p}`)}))} value={form.spent_points_policy} onChange={set('spent_points_policy')} helpText={t('settings.policyHelp')} error={errorAt('spent_points_policy')} />
            </FormLayout>
          </Card>
        </Layout.AnnotatedSection>
        <LanguageSection />
        <Layout.AnnotatedSection title={t('settings.rewards')} description={t('settings.rewardsHelp')}>
          <BlockStack gap="400">
            {errorAt('rewards') && <Banner tone="critical">{errorAt('rewards')}</Banner>}
            {form.rewards.length === 0 && (
              <Card>
                <Text as="p" tone="subdued">{t('settings.noRewards')}</Text>
              </Card>
            )}
            {form.rewards.map((reward, index) => (
              <RewardCard
                key={index}
                reward={reward}
                index={index}
                errorAt={errorAt}
                onChange={(changed) => setRewards(form.rewards.map((r, i) => (i === index ? changed : r)))}
                onRemove={() => setRewards(form.rewards.filter((_, i) => i !== index))}
              />
            ))}
            <Box>
              <Button onClick={() => setRewards([...form.rewards, NEW_REWARD])}>{t('settings.addReward')}</Button>
            </Box>
          </BlockStack>
        </Layout.AnnotatedSection>
      </Layout>
    </Page>
  );
}

function SettingsPage() {
  const settings = useResource(() => api.settings(), []);
  return <Loaded resource={settings} title={t('nav.settings')}>{(data) => <SettingsForm loaded={data} />}</Loaded>;
}

export const settings = {path: 'settings', label: 'nav.settings', icon: SettingsIcon, routes: [{pattern: /^settings$/, Component: SettingsPage}]};
