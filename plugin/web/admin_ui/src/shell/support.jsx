/** What every support action asks for (a reason and a note), and the confirmation modal of destructive ones. */
import {useState} from 'react';
import {Banner, FormLayout, Modal, Select, TextField} from '@shopify/polaris';
import {config} from '../config.js';
import {errorsOf} from '../fieldErrors.js';
import {t} from '../i18n.js';
import {useToast} from './feedback.jsx';

export const EMPTY_REASON = {reason_code: config.reasonCodes[0] || 'other', note: ''};

/** The reason select and the note field; their errors come from the API's `fields`. */
export function ReasonFields({value, onChange, errorAt, idPrefix}) {
  return (
    <>
      <Select
        id={`${idPrefix}-reason`}
        label={t('support.reason')}
        options={config.reasonCodes.map((code) => ({value: code, label: t(`reason.${code}`)}))}
        value={value.reason_code}
        onChange={(reason_code) => onChange({...value, reason_code})}
        error={errorAt('reason_code')}
      />
      <TextField
        id={`${idPrefix}-note`}
        label={t('support.note')}
        value={value.note}
        onChange={(note) => onChange({...value, note})}
        autoComplete="off"
        maxLength={500}
        error={errorAt('note')}
      />
    </>
  );
}

/** Runs one support action from a form: the API's refusal stays on the form, success is toasted. */
export function useSupportAction(perform, {done, onDone}) {
  const toast = useToast();
  const [refusal, setRefusal] = useState(null);
  const [busy, setBusy] = useState(false);
  const run = async (...args) => {
    setBusy(true);
    try {
      const answer = await perform(...args);
      setRefusal(null);
      toast(done);
      onDone(answer);
    } catch (error) {
      setRefusal(error);
    } finally {
      setBusy(false);
    }
  };
  return {run, busy, refusal, errorAt: errorsOf(refusal)};
}

/** A destructive support action behind a modal that asks for the reason and note before it acts. */
export function ConfirmActionModal({open, title, body, confirm, done, perform, onClose, onDone}) {
  const [reason, setReason] = useState(EMPTY_REASON);
  const action = useSupportAction(() => perform(reason), {done, onDone: (answer) => { setReason(EMPTY_REASON); onDone(answer); }});
  return (
    <Modal
      open={open}
      onClose={onClose}
      title={title}
      primaryAction={{content: confirm, destructive: true, loading: action.busy, onAction: action.run}}
      secondaryActions={[{content: t('cancel'), onAction: onClose}]}
    >
      <Modal.Section>
        <FormLayout>
          <p>{body}</p>
          {action.refusal && <Banner tone="critical">{action.refusal.message}</Banner>}
          <ReasonFields value={reason} onChange={setReason} errorAt={action.errorAt} idPrefix="confirm" />
        </FormLayout>
      </Modal.Section>
    </Modal>
  );
}
