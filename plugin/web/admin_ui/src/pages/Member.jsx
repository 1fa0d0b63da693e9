/** A member: balance, history with explanations, redemptions, and the support actions on them. */
import {useState} from 'react';
import {Badge, Banner, BlockStack, Button, Card, DataTable, Form, FormLayout, InlineGrid, Layout, Page, Text, TextField} from '@shopify/polaris';
import {api} from '../api.js';
import {formatDate, formatNumber, formatSigned} from '../format.js';
import {t} from '../i18n.js';
import {whole} from '../input.js';
import {Loaded, useResource} from '../shell/loading.jsx';
import {ConfirmActionModal, EMPTY_REASON, ReasonFields, useSupportAction} from '../shell/support.jsx';

async function loadMember(customerId) {
  const [card, history, audit] = await Promise.all([api.findMember({customerId}), api.history(customerId), api.actions(customerId)]);
  return {...card, history: history.history, actions: Object.fromEntries(audit.actions.map((a) => [a.id, a]))};
}

function Figures({member}) {
  return (
    <InlineGrid columns={{xs: 1, sm: 3}} gap="400">
      {['balance', 'pending', 'available'].map((name) => (
        <Card key={name}>
          <BlockStack gap="200">
            <Text as="h3" variant="headingSm" tone="subdued">{t(`member.${name}`)}</Text>
            <Text as="p" variant="heading2xl" id={`member-${name}`}>{formatNumber(member[name])}</Text>
          </BlockStack>
        </Card>
      ))}
    </InlineGrid>
  );
}

/** Why a posting happened, in words: its explanation, the order, and for support actions who. */
function explanation(line) {
  const parts = [line.explanation, line.order && t('member.order', {order: line.order})];
  if (line.support_action_id) parts.push(t('member.by', {by: line.by})); // the explanation already says reason: note
  return parts.filter(Boolean).join(' · ');
}

/** Undo for a support action still in force; for one already undone, by which action. */
function undoCell(action, onUndo) {
  if (!action) return '';
  if (action.undone_by) return t('activity.undoneBy', {id: action.undone_by});
  return (
    <Button size="slim" onClick={() => onUndo(action.id)} accessibilityLabel={t('member.undoLabel', {id: action.id})}>
      {t('member.undo')}
    </Button>
  );
}

function History({member, onUndo}) {
  if (member.history.length === 0) return <Text as="p" tone="subdued">{t('member.noHistory')}</Text>;
  const rows = member.history.map((line) => [
    formatDate(line.at),
    t(`posting.${line.kind}`),
    formatSigned(line.points),
    formatNumber(line.balance_after),
    explanation(line),
    undoCell(member.actions[line.support_action_id], onUndo),
  ]);
  return (
    <DataTable
      columnContentTypes={['text', 'text', 'numeric', 'numeric', 'text', 'text']}
      headings={[t('member.when'), t('member.kind'), t('member.points'), t('member.balanceAfter'), t('member.why'), t('member.actions')]}
      rows={rows}
    />
  );
}

function Redemptions({member, onCancel}) {
  if (member.redemptions.length === 0) return <Text as="p" tone="subdued">{t('member.noRedemptions')}</Text>;
  const rows = member.redemptions.map((r) => [
    r.reward,
    formatNumber(r.points),
    r.code || '—',
    <Badge tone={r.status === 'issued' ? 'success' : undefined}>{t(`redemption.${r.status}`)}</Badge>,
    r.status === 'issued' ? (
      <Button size="slim" tone="critical" onClick={() => onCancel(r.id)} accessibilityLabel={t('member.cancelRewardLabel', {code: r.code})}>
        {t('member.cancelReward')}
      </Button>
    ) : '',
  ]);
  return (
    <DataTable
      columnContentTypes={['text', 'numeric', 'text', 'text', 'text']}
      headings={[t('member.reward'), t('member.points'), t('member.code'), t('member.status'), t('member.actions')]}
      rows={rows}
    />
  );
}

function AdjustForm({member, onDone}) {
  const [points, setPoints] = useState('');
  const [reason, setReason] = useState(EMPTY_REASON);
  const action = useSupportAction(() => api.adjust(member.customer_id, {points: whole(points), ...reason}), {
    done: t('member.adjusted'),
    onDone: () => {
      setPoints('');
      setReason(EMPTY_REASON);
      onDone();
    },
  });
  return (
    <Card>
      <Form onSubmit={action.run}>
        <FormLayout>
          <Text as="h2" variant="headingMd">{t('member.adjustTitle')}</Text>
          {action.refusal && <Banner tone="critical">{action.refusal.message}</Banner>}
          <TextField id="adjust-points" label={t('member.points')} type="number" inputMode="numeric" value={points} onChange={setPoints} autoComplete="off" helpText={t('member.adjustHelp')} error={action.errorAt('points')} />
          <ReasonFields value={reason} onChange={setReason} errorAt={action.errorAt} idPrefix="adjust" />
          <Button submit variant="primary" loading={action.busy}>{t('member.adjust')}</Button>
        </FormLayout>
      </Form>
    </Card>
  );
}

function ReverseForm({onAsk}) {
  const [orderId, setOrderId] = useState('');
  const [points, setPoints] = useState('');
  const ask = () => orderId.trim() && onAsk({orderId: orderId.trim(), points: points.trim() === '' ? undefined : whole(points)});
  return (
    <Card>
      <Form onSubmit={ask}>
        <FormLayout>
          <Text as="h2" variant="headingMd">{t('member.reverseTitle')}</Text>
          <TextField label={t('member.orderId')} inputMode="numeric" value={orderId} onChange={setOrderId} autoComplete="off" requiredIndicator />
          <TextField label={t('member.reversePoints')} type="number" inputMode="numeric" value={points} onChange={setPoints} autoComplete="off" helpText={t('member.reverseHelp')} />
          <Button submit tone="critical" disabled={!orderId.trim()}>{t('member.reverse')}</Button>
        </FormLayout>
      </Form>
    </Card>
  );
}

/** The destructive actions, each behind its modal: undo a support action, reverse an order, cancel a reward. */
function confirmation(pending) {
  if (!pending) return null;
  if (pending.kind === 'undo') {
    return {title: t('member.undoTitle', {id: pending.id}), body: t('member.undoBody'), confirm: t('member.undo'), done: t('member.undone'), perform: (reason) => api.undo(pending.id, reason)};
  }
  if (pending.kind === 'reverse') {
    const body = pending.points === undefined ? {} : {points: pending.points};
    return {title: t('member.reverseConfirm', {order: pending.orderId}), body: t('member.reverseBody'), confirm: t('member.reverse'), done: t('member.reversed'), perform: (reason) => api.reverse(pending.orderId, {...body, ...reason})};
  }
  return {title: t('member.cancelRewardTitle'), body: t('member.cancelRewardBody'), confirm: t('member.cancelReward'), done: t('member.rewardCancelled'), perform: (reason) => api.cancelReward(pending.id, reason)};
}

function MemberView({member, reload}) {
  const [pending, setPending] = useState(null);
  const modal = confirmation(pending);
  const close = () => setPending(null);
  return (
    <Page title={member.name || member.email || t('member.customer', {id: member.customer_id})} subtitle={t('member.subtitle', {id: member.customer_id, email: member.email || '—'})} backAction={{content: t('nav.members'), url: '/admin/members'}}>
      <Layout>
        <Layout.Section>
          <Figures member={member} />
        </Layout.Section>
        <Layout.Section>
          <InlineGrid columns={{xs: 1, md: 2}} gap="400">
            <AdjustForm member={member} onDone={reload} />
            <ReverseForm onAsk={({orderId, points}) => setPending({kind: 'reverse', orderId, points})} />
          </InlineGrid>
        </Layout.Section>
        <Layout.Section>
          <Card>
            <BlockStack gap="300">
              <Text as="h2" variant="headingMd">{t('member.history')}</Text>
              <History member={member} onUndo={(id) => setPending({kind: 'undo', id})} />
            </BlockStack>
          </Card>
        </Layout.Section>
        <Layout.Section>
          <Card>
            <BlockStack gap="300">
              <Text as="h2" variant="headingMd">{t('member.redemptions')}</Text>
              <Redemptions member={member} onCancel={(id) => setPending({kind: 'cancel', id})} />
            </BlockStack>
          </Card>
        </Layout.Section>
      </Layout>
      {modal && <ConfirmActionModal open key={JSON.stringify(pending)} {...modal} onClose={close} onDone={() => { close(); reload(); }} />}
    </Page>
  );
}

export function MemberPage({customerId}) {
  const member = useResource(() => loadMember(customerId), [customerId]);
  return <Loaded resource={member} title={t('member.customer', {id: customerId})}>{(data) => <MemberView member={data} reload={member.reload} />}</Loaded>;
}
