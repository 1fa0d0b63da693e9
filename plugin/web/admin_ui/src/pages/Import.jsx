/** Import: members and balances from another loyalty app's CSV export, checked first, undoable with a reason. */
import {useState} from 'react';
import {Badge, Banner, Button, Card, Checkbox, DataTable, DropZone, Form, FormLayout, Layout, Modal, Page, Select, Text, TextField} from '@shopify/polaris';
import {ImportIcon} from '@shopify/polaris-icons';
import {api} from '../api.js';
import {config} from '../config.js';
import {errorsOf} from '../fieldErrors.js';
import {formatDate, formatNumber} from '../format.js';
import {t} from '../i18n.js';
import {Empty} from '../shell/Empty.jsx';
import {useToast} from '../shell/feedback.jsx';
import {Loaded, useResource} from '../shell/loading.jsx';

function UploadForm({onDone}) {
  const toast = useToast();
  const [file, setFile] = useState(null);
  const [source, setSource] = useState(config.importSources[0] ? config.importSources[0].key : '');
  const [dryRun, setDryRun] = useState(true);
  const [refusal, setRefusal] = useState(null);
  const [busy, setBusy] = useState(false);
  const errorAt = errorsOf(refusal);
  const upload = async () => {
    setBusy(true);
    try {
      const report = await api.upload({file, source, dryRun});
      setRefusal(null);
      setFile(null);
      toast(t(report.dry_run ? 'import.checked' : 'import.imported', {rows: report.rows}));
      onDone();
    } catch (error) {
      setRefusal(error);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Card>
      <Form onSubmit={upload}>
        <FormLayout>
          <Text as="h2" variant="headingMd">{t('import.uploadTitle')}</Text>
          {refusal && <Banner tone="critical">{refusal.message}</Banner>}
          <Select label={t('import.source')} options={config.importSources.map((s) => ({value: s.key, label: s.title}))} value={source} onChange={setSource} error={errorAt('source')} />
          <DropZone label={t('import.file')} accept=".csv,text/csv" allowMultiple={false} onDrop={(files) => setFile(files[0] || null)} error={Boolean(errorAt('file'))}>
            {file ? <Text as="p" alignment="center">{file.name}</Text> : <DropZone.FileUpload actionTitle={t('import.chooseFile')} />}
          </DropZone>
          <Checkbox label={t('import.dryRun')} helpText={t('import.dryRunHelp')} checked={dryRun} onChange={setDryRun} error={errorAt('dry_run')} />
          <Button submit variant="primary" loading={busy} disabled={!file}>{t(dryRun ? 'import.check' : 'import.import')}</Button>
        </FormLayout>
      </Form>
    </Card>
  );
}

function status(batch) {
  if (batch.undone) return <Badge>{t('import.undone')}</Badge>;
  if (batch.dry_run) return <Badge tone="info">{t('import.dryRunBadge')}</Badge>;
  return <Badge tone={batch.status === 'done' ? 'success' : undefined}>{batch.status}</Badge>;
}

function BatchesTable({batches, onUndo}) {
  if (batches.length === 0) return <Empty heading={t('import.emptyHeading')}>{t('import.emptyBody')}</Empty>;
  const rows = batches.map((b) => [
    b.filename,
    formatDate(b.created_at),
    status(b),
    formatNumber(b.rows),
    formatNumber(b.matched),
    formatNumber(b.invalid),
    !b.dry_run && !b.undone ? (
      <Button size="slim" tone="critical" onClick={() => onUndo(b)} accessibilityLabel={t('import.undoLabel', {name: b.filename})}>{t('import.undo')}</Button>
    ) : '',
  ]);
  return (
    <DataTable
      columnContentTypes={['text', 'text', 'text', 'numeric', 'numeric', 'numeric', 'text']}
      headings={[t('import.file'), t('import.when'), t('member.status'), t('import.rows'), t('import.matched'), t('import.invalid'), '']}
      rows={rows}
    />
  );
}

function UndoModal({batch, onClose, onDone}) {
  const toast = useToast();
  const [reason, setReason] = useState('');
  const [refusal, setRefusal] = useState(null);
  const undo = async () => {
    try {
      const answer = await api.undoImport(batch.id, reason);
      toast(t('import.undoneToast', {points: formatNumber(answer.points_taken_back)}));
      onDone();
    } catch (error) {
      setRefusal(error);
    }
  };
  return (
    <Modal open onClose={onClose} title={t('import.undoTitle', {name: batch.filename})} primaryAction={{content: t('import.undo'), destructive: true, onAction: undo}} secondaryActions={[{content: t('cancel'), onAction: onClose}]}>
      <Modal.Section>
        <FormLayout>
          <p>{t('import.undoBody')}</p>
          {refusal && <Banner tone="critical">{refusal.message}</Banner>}
          <TextField label={t('support.reason')} value={reason} onChange={setReason} autoComplete="off" error={errorsOf(refusal)('reason')} />
        </FormLayout>
      </Modal.Section>
    </Modal>
  );
}

function ImportView({batches, reload}) {
  const [undoing, setUndoing] = useState(null);
  return (
    <Page title={t('nav.import')} subtitle={t('import.subtitle')}>
      <Layout>
        <Layout.Section>
          <UploadForm onDone={reload} />
        </Layout.Section>
        <Layout.Section>
          <Card padding="0">
            <BatchesTable batches={batches} onUndo={setUndoing} />
          </Card>
        </Layout.Section>
      </Layout>
      {undoing && <UndoModal batch={undoing} onClose={() => setUndoing(null)} onDone={() => { setUndoing(null); reload(); }} />}
    </Page>
  );
}

function ImportPage() {
  const batches = useResource(() => api.imports(), []);
  return <Loaded resource={batches} title={t('nav.import')}>{(data) => <ImportView batches={data.imports} reload={batches.reload} />}</Loaded>;
}

export const importPage = {path: 'import', label: 'nav.import', icon: ImportIcon, routes: [{pattern: /^import$/, Component: ImportPage}]};
