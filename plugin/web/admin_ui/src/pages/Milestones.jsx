/** Milestones: spend thresholds, punch cards, signup and birthday bonuses, custom actions and surveys, action keys. */
import {useState} from 'react';
import {Badge, Banner, BlockStack, Button, Card, DataTable, FormLayout, InlineStack, Layout, Modal, Page, Select, Text, TextField} from '@shopify/polaris';
import {StarIcon} from '@shopify/polaris-icons';
import {api} from '../api.js';
import {errorsOf} from '../fieldErrors.js';
import {formatDate} from '../format.js';
import {optional, whole} from '../input.js';
import {rewardOptions} from '../rewardOptions.js';
import {t} from '../i18n.js';
import {UnsavedChangesBar, useToast} from '../shell/feedback.jsx';
import {Loaded, useResource} from '../shell/loading.jsx';

const text = (value) => (value === null || value === undefined ? '' : String(value));
const orNull = (value) => (text(value).trim() === '' ? null : whole(value));
const PERIODS = ['day', 'week', 'month', 'year', 'lifetime'];
const KINDS = ['server', 'follow', 'visit', 'survey'];
const NETWORKS = ['instagram', 'tiktok', 'facebook', 'x', 'youtube', 'pinterest'];
const NEW = {
  thresholds: () => ({id: '', title: '', amount: '', period: 'lifetime', points: '', reward: '', repeat: true}),
  punch_cards: () => ({id: '', title: '', every: '', min_subtotal: '', points: '', reward: ''}),
  actions: () => ({id: '', title: '', kind: 'follow', points: '', cap_count: '', cap_period: 'lifetime', cooldown_minutes: '0', url: '', network: 'instagram', questions: ''}),
};

/** Survey questions are edited one a line: "key | type | text" (type nps or text). */
const questionsText = (questions) => (questions || []).map((q) => `${q.key} | ${q.type} | ${q.text}`).join('\n');
const questionsOf = (value) => text(value).split('\n').map((lineText) => lineText.trim()).filter(Boolean).map((lineText) => {
  const [key, type, ...rest] = lineText.split('|').map((part) => part.trim());
  return {key, type: type || 'nps', text: rest.join(' | ')};
});

/** The form's values from the programme the API sent. */
function toForm(programme) {
  return {
    thresholds: programme.thresholds.map((x) => ({...x, points: text(x.points), reward: text(x.reward)})),
    punch_cards: programme.punch_cards.map((x) => ({...x, every: text(x.every), min_subtotal: text(x.min_subtotal), points: text(x.points), reward: text(x.reward)})),
    signup_points: text(programme.signup.points),
    birthday_points: text(programme.birthday.points),
    birthday_when: programme.birthday.when,
    birthday_metafield: text(programme.birthday.metafield),
    actions: programme.actions.map((a) => ({
      ...a, points: text(a.points), cap_count: a.cap ? text(a.cap.count) : '', cap_period: a.cap ? a.cap.period : 'lifetime',
      cooldown_minutes: text(a.cooldown_minutes), url: text(a.url), network: a.network || 'instagram', questions: questionsText(a.questions),
    })),
  };
}

/** The programme as the API takes it, from the form (text fields hold strings; the API says what is wrong). */
function toRequest(form) {
  return {
    thresholds: form.thresholds.map((x) => ({id: x.id, title: x.title, amount: text(x.amount).trim(), period: x.period, points: whole(x.points), reward: x.reward || null, repeat: Boolean(x.repeat)})),
    punch_cards: form.punch_cards.map((x) => ({id: x.id, title: x.title, every: whole(x.every), min_subtotal: optional(x.min_subtotal), points: whole(x.points), reward: x.reward || null})),
    signup: {points: whole(form.signup_points)},
    birthday: {points: whole(form.birthday_points), when: form.birthday_when, metafield: optional(form.birthday_metafield)},
    actions: form.actions.map((a) => ({
      id: a.id, title: a.title, kind: a.kind, points: whole(a.points),
      cap: orNull(a.cap_count) === null ? null : {count: whole(a.cap_count), period: a.cap_period},
      cooldown_minutes: whole(a.cooldown_minutes || '0'),
      url: a.kind === 'follow' || a.kind === 'visit' ? optional(a.url) : null,
      network: a.kind === 'follow' ? a.network : null,
      questions: a.kind === 'survey' ? questionsOf(a.questions) : [],
    })),
  };
}

function Rows({name, rows, setRows, errorAt, render}) {
  const update = (index) => (key) => (value) => setRows(rows.map((row, i) => (i === index ? {...row, [key]: value} : row)));
  return (
    <BlockStack gap="400">
      {rows.length === 0 && <Text as="p" tone="subdued">{t(`milestones.${name}.none`)}</Text>}
      {rows.map((row, index) => (
        <Card key={index} background="bg-surface-secondary">
          <BlockStack gap="300">
            {render(row, update(index), (key) => errorAt(name, index, key), index)}
            <InlineStack align="end">
              <Button tone="critical" variant="plain" onClick={() => setRows(rows.filter((_, i) => i !== index))}
                accessibilityLabel={t('milestones.removeLabel', {name: row.title || row.id || index + 1})}>{t('milestones.remove')}</Button>
            </InlineStack>
          </BlockStack>
        </Card>
      ))}
      <InlineStack><Button onClick={() => setRows([...rows, NEW[name]()])}>{t(`milestones.${name}.add`)}</Button></InlineStack>
      {errorAt(name) && <Text as="p" tone="critical">{errorAt(name)}</Text>}
    </BlockStack>
  );
}

function ProgrammeForm({loaded, rewards, onSaved}) {
  const toast = useToast();
  const [saved, setSaved] = useState(loaded);
  const [form, setForm] = useState(toForm(loaded));
  const [refusal, setRefusal] = useState(null);
  const [saving, setSaving] = useState(false);
  const errorAt = errorsOf(refusal);
  const dirty = JSON.stringify(toRequest(form)) !== JSON.stringify(toRequest(toForm(saved)));
  const set = (name) => (value) => setForm({...form, [name]: value});
  const save = async () => {
    setSaving(true);
    try {
      const answer = await api.saveMilestones(toRequest(form));
      setSaved(answer);
      setForm(toForm(answer));
      setRefusal(null);
      toast(t('milestones.saved', {version: answer.version}));
      onSaved();
    } catch (error) {
      setRefusal(error);
      toast(t('milestones.notSaved'), {error: true});
    } finally {
      setSaving(false);
    }
  };
  const field = (row, update, errorFor, key, props = {}) => (
    <TextField label={t(`milestones.field.${key}`)} value={text(row[key])} onChange={update(key)} autoComplete="off" error={errorFor(key)} {...props} />
  );
  const options = (values, prefix) => values.map((value) => ({value, label: t(`${prefix}.${value}`)}));
  const reward = (row, update, errorFor) => (
    <Select label={t('milestones.field.reward')} options={rewardOptions(rewards, row.reward)} value={row.reward} onChange={update('reward')}
      error={errorFor('reward')} helpText={t('milestones.rewardHelp')} />
  );
  return (
    <>
      <UnsavedChangesBar dirty={dirty} saving={saving} onSave={save} onDiscard={() => (setForm(toForm(saved)), setRefusal(null))} />
      {refusal && <Layout.Section><Banner tone="critical" title={t('milestones.notSaved')}><p>{refusal.message}</p></Banner></Layout.Section>}
      <Layout.AnnotatedSection title={t('milestones.thresholds.title')} description={t('milestones.thresholds.help')}>
        <Rows name="thresholds" rows={form.thresholds} setRows={set('thresholds')} errorAt={errorAt} render={(row, update, errorFor) => (
          <FormLayout>
            <FormLayout.Group>{field(row, update, errorFor, 'id')}{field(row, update, errorFor, 'title')}</FormLayout.Group>
            <FormLayout.Group>
              {field(row, update, errorFor, 'amount', {inputMode: 'decimal'})}
              <Select label={t('milestones.field.period')} options={options(['lifetime', 'calendar_year'], 'milestones.period')} value={row.period} onChange={update('period')} error={errorFor('period')} />
              {field(row, update, errorFor, 'points', {type: 'number', inputMode: 'numeric'})}
            </FormLayout.Group>
            {reward(row, update, errorFor)}
            <Select label={t('milestones.field.repeat')} options={[{value: 'yes', label: t('milestones.repeatYes')}, {value: 'no', label: t('milestones.repeatNo')}]}
              value={row.repeat ? 'yes' : 'no'} onChange={(value) => update('repeat')(value === 'yes')} />
          </FormLayout>
        )} />
      </Layout.AnnotatedSection>
      <Layout.AnnotatedSection title={t('milestones.punch_cards.title')} description={t('milestones.punch_cards.help')}>
        <Rows name="punch_cards" rows={form.punch_cards} setRows={set('punch_cards')} errorAt={errorAt} render={(row, update, errorFor) => (
          <FormLayout>
            <FormLayout.Group>{field(row, update, errorFor, 'id')}{field(row, update, errorFor, 'title')}</FormLayout.Group>
            <FormLayout.Group>
              {field(row, update, errorFor, 'every', {type: 'number', inputMode: 'numeric'})}
              {field(row, update, errorFor, 'min_subtotal', {inputMode: 'decimal'})}
              {field(row, update, errorFor, 'points', {type: 'number', inputMode: 'numeric'})}
            </FormLayout.Group>
            {reward(row, update, errorFor)}
          </FormLayout>
        )} />
      </Layout.AnnotatedSection>
      <Layout.AnnotatedSection title={t('milestones.bonuses.title')} description={t('milestones.bonuses.help')}>
        <Card>
          <FormLayout>
            <TextField label={t('milestones.field.signup_points')} type="number" inputMode="numeric" value={form.signup_points} onChange={set('signup_points')} autoComplete="off" error={errorAt('signup', 'points')} helpText={t('milestones.signupHelp')} />
            <FormLayout.Group>
              <TextField label={t('milestones.field.birthday_points')} type="number" inputMode="numeric" value={form.birthday_points} onChange={set('birthday_points')} autoComplete="off" error={errorAt('birthday', 'points')} />
              <Select label={t('milestones.field.birthday_when')} options={options(['day', 'month'], 'milestones.when')} value={form.birthday_when} onChange={set('birthday_when')} error={errorAt('birthday', 'when')} />
            </FormLayout.Group>
            <TextField label={t('milestones.field.birthday_metafield')} value={form.birthday_metafield} onChange={set('birthday_metafield')} autoComplete="off" placeholder="facts.birth_date" error={errorAt('birthday', 'metafield')} helpText={t('milestones.metafieldHelp')} />
          </FormLayout>
        </Card>
      </Layout.AnnotatedSection>
      <Layout.AnnotatedSection title={t('milestones.actions.title')} description={t('milestones.actions.help')}>
        <Rows name="actions" rows={form.actions} setRows={set('actions')} errorAt={errorAt} render={(row, update, errorFor) => (
          <FormLayout>
            <FormLayout.Group>{field(row, update, errorFor, 'id')}{field(row, update, errorFor, 'title')}</FormLayout.Group>
            <FormLayout.Group>
              <Select label={t('milestones.field.kind')} options={options(KINDS, 'milestones.kind')} value={row.kind} onChange={update('kind')} error={errorFor('kind')} />
              {field(row, update, errorFor, 'points', {type: 'number', inputMode: 'numeric'})}
            </FormLayout.Group>
            <FormLayout.Group>
              <TextField label={t('milestones.field.cap_count')} type="number" inputMode="numeric" value={text(row.cap_count)} onChange={update('cap_count')} autoComplete="off" helpText={t('milestones.capHelp')} error={errorFor('cap') || undefined} />
              <Select label={t('milestones.field.cap_period')} options={options(PERIODS, 'milestones.per')} value={row.cap_period} onChange={update('cap_period')} />
              {field(row, update, errorFor, 'cooldown_minutes', {type: 'number', inputMode: 'numeric'})}
            </FormLayout.Group>
            {(row.kind === 'follow' || row.kind === 'visit') && field(row, update, errorFor, 'url', {type: 'url', placeholder: 'https://'})}
            {row.kind === 'follow' && <Select label={t('milestones.field.network')} options={NETWORKS.map((n) => ({value: n, label: n}))} value={row.network} onChange={update('network')} error={errorFor('network')} />}
            {row.kind === 'survey' && field(row, update, errorFor, 'questions', {multiline: 3, helpText: t('milestones.questionsHelp')})}
          </FormLayout>
        )} />
      </Layout.AnnotatedSection>
    </>
  );
}

function ActionKeys() {
  const toast = useToast();
  const keys = useResource(() => api.actionKeys(), []);
  const [name, setName] = useState('');
  const [shown, setShown] = useState(null);
  const [refusal, setRefusal] = useState(null);
  const [revoking, setRevoking] = useState(null);
  const create = async () => {
    try {
      const key = await api.createActionKey({name});
      setShown(key);
      setName('');
      setRefusal(null);
      keys.reload();
    } catch (error) {
      setRefusal(error);
    }
  };
  const revoke = async () => {
    try {
      await api.revokeActionKey(revoking.key_id);
      toast(t('milestones.keyRevoked'));
    } catch (error) {
      toast(error.message, {error: true});
    }
    setRevoking(null);
    keys.reload();
  };
  return (
    <Layout.AnnotatedSection title={t('milestones.keys.title')} description={t('milestones.keys.help')}>
      <BlockStack gap="400">
        {shown && (
          <Banner tone="success" title={t('milestones.keyCopyNow')} onDismiss={() => setShown(null)}>
            <BlockStack gap="200">
              <TextField label={t('milestones.keyId')} value={shown.key_id} readOnly autoComplete="off" selectTextOnFocus />
              <TextField label={t('milestones.keySecret')} value={shown.secret} readOnly autoComplete="off" selectTextOnFocus />
            </BlockStack>
          </Banner>
        )}
        <Card padding="0">
          <Loaded resource={keys} title={t('milestones.keys.title')}>{(data) => (data.keys.length === 0
            ? <Text as="p" tone="subdued">{t('milestones.keysNone')}</Text>
            : <DataTable columnContentTypes={['text', 'text', 'text', 'text']} headings={[t('milestones.keyName'), t('milestones.keyId'), t('milestones.keyCreated'), '']}
              rows={data.keys.map((key) => [key.name, key.key_id, formatDate(key.created_at), key.revoked_at ? <Badge>{t('milestones.keyRevokedBadge')}</Badge> : (
                <Button size="slim" tone="critical" onClick={() => setRevoking(key)} accessibilityLabel={t('milestones.revokeLabel', {name: key.name})}>{t('milestones.revoke')}</Button>
              )])} />)}
          </Loaded>
        </Card>
        <Card>
          <FormLayout>
            {refusal && <Banner tone="critical">{refusal.message}</Banner>}
            <TextField label={t('milestones.keyName')} value={name} onChange={setName} autoComplete="off" maxLength={120} error={errorsOf(refusal)('name')} />
            <InlineStack><Button variant="primary" onClick={create}>{t('milestones.keyCreate')}</Button></InlineStack>
          </FormLayout>
        </Card>
      </BlockStack>
      <Modal open={Boolean(revoking)} onClose={() => setRevoking(null)} title={t('milestones.revokeTitle', {name: revoking ? revoking.name : ''})}
        primaryAction={{content: t('milestones.revoke'), destructive: true, onAction: revoke}} secondaryActions={[{content: t('cancel'), onAction: () => setRevoking(null)}]}>
        <Modal.Section><p>{t('milestones.revokeBody')}</p></Modal.Section>
      </Modal>
    </Layout.AnnotatedSection>
  );
}

function MilestonesPage() {
  // The programme, and the catalogue its grants may name.
  const programme = useResource(() => Promise.all([api.milestones(), api.settings()]), []);
  return (
    <Loaded resource={programme} title={t('nav.milestones')}>{([data, shopSettings]) => (
      <Page title={t('nav.milestones')} subtitle={t('milestones.subtitle', {version: data.version})}>
        <Layout>
          <ProgrammeForm loaded={data} rewards={shopSettings.settings.rewards} onSaved={() => {}} />
          <ActionKeys />
        </Layout>
      </Page>
    )}</Loaded>
  );
}

export const milestones = {path: 'milestones', label: 'nav.milestones', icon: StarIcon, routes: [{pattern: /^milestones$/, Component: MilestonesPage}]};
