/** Programme: the earning rules, edited as a new version, previewed on the real order history before saving. */
import {useState} from 'react';
import {Banner, BlockStack, Button, Card, DataTable, FormLayout, InlineGrid, InlineStack, Layout, Page, Select, Text, TextField} from '@shopify/polaris';
import {StarIcon} from '@shopify/polaris-icons';
import {api} from '../api.js';
import {errorsOf} from '../fieldErrors.js';
import {formatDate, formatNumber, formatSigned} from '../format.js';
import {whole} from '../input.js';
import {t} from '../i18n.js';
import {UnsavedChangesBar, useToast} from '../shell/feedback.jsx';
import {Loaded, useResource} from '../shell/loading.jsx';

// Each rule type's settings (docs/earning-rules.md), in the order the form shows them, with how each is typed.
const RULE_FIELDS = {
  base_rate: {points: 'whole', per_amount: 'money', min_subtotal: 'money', cap_per_order: 'whole'},
  fixed_points: {points: 'whole', min_subtotal: 'money'},
  multiplier: {multiplier: 'money', match: 'json'},
  exclusion: {match: 'json'},
  customer_segment: {tag: 'text', points: 'whole', per_amount: 'money'},
  campaign: {multiplier: 'money', bonus_points: 'whole', starts_at: 'text', ends_at: 'text', customer_tag: 'text', match: 'json'},
  points_cap: {max_points: 'whole'},
};
const RULE_TYPES = Object.keys(RULE_FIELDS);
const PREVIEW_DAYS = 30;

const blank = (value) => value === null || value === undefined || String(value).trim() === '';

/** A stored rule as the form holds it: every setting as text, `match` as pretty JSON. */
function draftOf(rule) {
  const draft = {type: rule.type, id: rule.id || '', name: rule.name || ''};
  for (const [name, kind] of Object.entries(RULE_FIELDS[rule.type] || {})) {
    if (kind === 'json') draft[name] = rule[name] ? JSON.stringify(rule[name], null, 2) : '';
    else draft[name] = blank(rule[name]) ? '' : String(rule[name]);
  }
  return draft;
}

/** One rule as the API takes it; empty settings are left out, and JSON that does not parse goes as typed. */
function ruleOf(draft) {
  const rule = {type: draft.type};
  for (const [name, kind] of Object.entries({id: 'text', name: 'text', ...RULE_FIELDS[draft.type]})) {
    const value = draft[name];
    if (blank(value)) continue;
    if (kind === 'whole') rule[name] = whole(value);
    else if (kind === 'json') rule[name] = parsedOrText(value);
    else rule[name] = String(value).trim();
  }
  return rule;
}

function parsedOrText(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text; // the API answers "not a valid mapping" on this very field
  }
}

const formOf = (ruleSet) => ({time_zone: ruleSet.time_zone, campaign_stack_cap: ruleSet.campaign_stack_cap, rules: ruleSet.rules.map(draftOf)});
const requestOf = (form) => ({time_zone: form.time_zone.trim(), campaign_stack_cap: String(form.campaign_stack_cap).trim(), rules: form.rules.map(ruleOf)});

/** One line saying what a rule does, from its saved or edited settings. */
function describe(draft) {
  const values = {...draft, match: draft.match ? t('rule.matching') : t('rule.everyLine')};
  if (draft.type === 'campaign') return t(draft.bonus_points ? 'summary.campaignBonus' : 'summary.campaign', values);
  if (draft.type === 'base_rate' && blank(draft.points)) return t('summary.base_rate_default');
  return t(`summary.${draft.type}`, values);
}

function RuleCard({draft, index, errorAt, onChange, onRemove}) {
  const number = index + 1;
  const input = (name, kind) => (
    <TextField
      key={name}
      label={t(`rule.${name}`)}
      value={draft[name]}
      onChange={(value) => onChange({...draft, [name]: value})}
      autoComplete="off"
      multiline={kind === 'json' ? 3 : undefined}
      monospaced={kind === 'json'}
      inputMode={kind === 'whole' ? 'numeric' : kind === 'money' ? 'decimal' : undefined}
      helpText={t(`rule.${name}Help`) === `rule.${name}Help` ? undefined : t(`rule.${name}Help`)}
      error={errorAt('rules', index, name)}
    />
  );
  return (
    <Card>
      <BlockStack gap="300">
        <InlineStack align="space-between" blockAlign="center">
          <BlockStack gap="100">
            <Text as="h3" variant="headingSm">{t('rule.heading', {n: number, type: t(`ruleType.${draft.type}`)})}</Text>
            <Text as="p" tone="subdued">{describe(draft)}</Text>
          </BlockStack>
          <Button tone="critical" variant="plain" onClick={onRemove} accessibilityLabel={t('rule.removeLabel', {n: number})}>{t('rule.remove')}</Button>
        </InlineStack>
        {errorAt('rules', index) && <Banner tone="critical">{errorAt('rules', index)}</Banner>}
        <FormLayout>
          <FormLayout.Group>{['id', 'name'].map((name) => input(name, 'text'))}</FormLayout.Group>
          <FormLayout.Group>{Object.entries(RULE_FIELDS[draft.type]).filter(([, k]) => k !== 'json').map(([name, kind]) => input(name, kind))}</FormLayout.Group>
          {RULE_FIELDS[draft.type].match && input('match', 'json')}
        </FormLayout>
      </BlockStack>
    </Card>
  );
}

function AddRule({onAdd}) {
  const [type, setType] = useState('base_rate');
  return (
    <InlineStack gap="200" blockAlign="end">
      <Select label={t('rule.newType')} options={RULE_TYPES.map((k) => ({value: k, label: t(`ruleType.${k}`)}))} value={type} onChange={setType} />
      <Button onClick={() => onAdd(draftOf({type}))}>{t('programme.addRule')}</Button>
    </InlineStack>
  );
}

function Figure({id, label, current, proposed, change}) {
  return (
    <BlockStack gap="100">
      <Text as="h3" variant="headingSm">{label}</Text>
      <Text as="p" id={id}>{t('preview.fromTo', {current, proposed, change})}</Text>
    </BlockStack>
  );
}

function PreviewResult({result}) {
  const points = result.points_issued;
  const money = result.money_value;
  const rows = result.largest_changes.map((c) => [`${c.order_id}`, `${c.customer_id ?? ''}`, formatNumber(c.current), formatNumber(c.proposed), formatSigned(c.change)]);
  return (
    <BlockStack gap="400">
      {!result.complete && <Banner tone="warning">{t('preview.partial', {orders: formatNumber(result.orders_replayed)})}</Banner>}
      <Text as="p" tone="subdued">{t('preview.replayed', {orders: formatNumber(result.orders_replayed), days: result.days})}</Text>
      <InlineGrid columns={3} gap="400">
        <Figure id="preview-points" label={t('preview.points')} current={formatNumber(points.current)} proposed={formatNumber(points.proposed)} change={formatSigned(points.change)} />
        {money ? (
          <Figure id="preview-money" label={t('preview.money', {currency: money.currency})} current={money.current} proposed={money.proposed} change={money.change.startsWith('-') ? money.change : `+${money.change}`} />
        ) : (
          <Text as="p" tone="subdued">{t('preview.noMoney')}</Text>
        )}
        <BlockStack gap="100">
          <Text as="h3" variant="headingSm">{t('preview.members')}</Text>
          <Text as="p" id="preview-members">{formatNumber(result.members_affected)}</Text>
        </BlockStack>
      </InlineGrid>
      {rows.length > 0 && (
        <DataTable
          columnContentTypes={['text', 'text', 'numeric', 'numeric', 'numeric']}
          headings={[t('preview.order'), t('preview.customer'), t('preview.current'), t('preview.proposed'), t('preview.change')]}
          rows={rows}
        />
      )}
    </BlockStack>
  );
}

function HistoryCard({versions}) {
  const rows = versions.map((v) => [`${v.version}`, formatDate(v.created_at), v.actor, formatNumber((v.rules.rules || []).length)]);
  return (
    <Card padding="0">
      <BlockStack gap="200">
        <div style={{padding: 'var(--p-space-400) var(--p-space-400) 0'}}>
          <Text as="h2" variant="headingMd">{t('programme.history')}</Text>
        </div>
        {rows.length === 0 ? (
          <div style={{padding: '0 var(--p-space-400) var(--p-space-400)'}}>
            <Text as="p" tone="subdued">{t('programme.noHistory')}</Text>
          </div>
        ) : (
          <DataTable columnContentTypes={['numeric', 'text', 'text', 'numeric']} headings={[t('programme.version'), t('programme.savedAt'), t('programme.savedBy'), t('programme.ruleCount')]} rows={rows} />
        )}
      </BlockStack>
    </Card>
  );
}

const replaced = (list, index, item) => list.map((old, i) => (i === index ? item : old));
const removed = (list, index) => list.filter((_, i) => i !== index);

/** The rules, one card each, in list order (the stages decide when each runs), and a way to add one. */
function RulesSection({rules, setRules, errorAt}) {
  const listError = errorAt('rules'); // a message about the list itself, such as too many rules
  return (
    <Layout.AnnotatedSection title={t('programme.rules')} description={t('programme.rulesHelp')}>
      <BlockStack gap="400">
        {typeof listError === 'string' && <Banner tone="critical">{listError}</Banner>}
        {rules.length === 0 && <Card><Text as="p" tone="subdued">{t('programme.noRules')}</Text></Card>}
        {rules.map((draft, index) => {
          const change = (edited) => setRules(replaced(rules, index, edited));
          return <RuleCard key={index} draft={draft} index={index} errorAt={errorAt} onChange={change} onRemove={() => setRules(removed(rules, index))} />;
        })}
        <Card>
          <AddRule onAdd={(draft) => setRules([...rules, draft])} />
        </Card>
      </BlockStack>
    </Layout.AnnotatedSection>
  );
}

/** The settings of the whole rule set: the campaigns' time zone and how far campaign multipliers stack. */
function RuleSetSection({form, edit, errorAt}) {
  const setting = (name, label, props) => (
    <TextField label={t(label)} helpText={t(`${label}Help`)} value={String(form[name])} onChange={(value) => edit({[name]: value})} autoComplete="off" error={errorAt(name)} {...props} />
  );
  return (
    <Layout.AnnotatedSection title={t('programme.general')} description={t('programme.generalHelp')}>
      <Card>
        <FormLayout>
          <FormLayout.Group>
            {setting('time_zone', 'programme.timeZone', {})}
            {setting('campaign_stack_cap', 'programme.stackCap', {inputMode: 'decimal'})}
          </FormLayout.Group>
        </FormLayout>
      </Card>
    </Layout.AnnotatedSection>
  );
}

const RefusalSection = ({message}) => (
  <Layout.Section>
    <Banner tone="critical" title={t('programme.refused')}>{message}</Banner>
  </Layout.Section>
);

/** The API's per-field errors: a save answers {rules: {...}}, a preview nests the rule set under "rules" once more. */
const previewRefusal = (error) => ({message: error.message, fields: error.fields && error.fields.rules});

function ProgrammeEditor({loaded, versions, reloadHistory}) {
  const toast = useToast();
  const [saved, setSaved] = useState(loaded);
  const [form, setForm] = useState(formOf(loaded));
  const [refusal, setRefusal] = useState(null);
  const [saving, setSaving] = useState(false);
  const [previewing, setPreviewing] = useState(false);
  const [preview, setPreview] = useState(null);
  const errorAt = errorsOf(refusal);
  const dirty = JSON.stringify(requestOf(form)) !== JSON.stringify(requestOf(formOf(saved)));
  const edit = (changes) => {
    setForm({...form, ...changes});
    setPreview(null); // figures for other rules would mislead
  };
  const setRules = (rules) => edit({rules});

  const save = async () => {
    setSaving(true);
    try {
      const answer = await api.saveRules(requestOf(form));
      setSaved(answer);
      setForm(formOf(answer));
      setRefusal(null);
      toast(t('programme.saved', {version: answer.version}));
      reloadHistory();
    } catch (error) {
      setRefusal(error);
      toast(t('programme.notSaved'), {error: true});
    } finally {
      setSaving(false);
    }
  };
  const runPreview = async () => {
    setPreviewing(true);
    try {
      setPreview(await api.previewRules(requestOf(form), PREVIEW_DAYS));
      setRefusal(null);
    } catch (error) {
      setRefusal(previewRefusal(error));
      setPreview(null);
    } finally {
      setPreviewing(false);
    }
  };
  const discard = () => {
    setForm(formOf(saved));
    setRefusal(null);
    setPreview(null);
  };

  return (
    <Page title={t('nav.programme')} subtitle={t('programme.version', {version: saved.version})}>
      <UnsavedChangesBar dirty={dirty} saving={saving} onSave={save} onDiscard={discard} />
      <Layout>
        {refusal && <RefusalSection message={refusal.message} />}
        <RuleSetSection form={form} edit={edit} errorAt={errorAt} />
        <RulesSection rules={form.rules} setRules={setRules} errorAt={errorAt} />
        <Layout.Section>
          <Card>
            <BlockStack gap="300">
              <InlineStack align="space-between" blockAlign="center">
                <Text as="h2" variant="headingMd">{t('preview.title')}</Text>
                <Button onClick={runPreview} loading={previewing}>{t('preview.run')}</Button>
              </InlineStack>
              {preview ? <PreviewResult result={preview} /> : <Text as="p" tone="subdued">{t('preview.help', {days: PREVIEW_DAYS})}</Text>}
            </BlockStack>
          </Card>
        </Layout.Section>
        <Layout.Section>
          <HistoryCard versions={versions} />
        </Layout.Section>
      </Layout>
    </Page>
  );
}

function ProgrammePage() {
  const rules = useResource(() => Promise.all([api.rules(), api.rulesHistory()]), []);
  return (
    <Loaded resource={rules} title={t('nav.programme')}>
      {([current, history]) => <ProgrammeEditor loaded={current} versions={history.versions} reloadHistory={rules.reload} />}
    </Loaded>
  );
}

export const programme = {path: 'programme', label: 'nav.programme', icon: StarIcon, routes: [{pattern: /^programme$/, Component: ProgrammePage}]};
