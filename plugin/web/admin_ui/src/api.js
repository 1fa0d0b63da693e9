/** The admin API client: every call the pages make, each with a fresh session token, errors in the app's shape. */

export class ApiError extends Error {
  /** {code, message, fields?} as the API sent it; `fields` maps each field to its messages. */
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || `http_${status}`;
    this.fields = error.fields || null;
  }
}

async function sessionToken() {
  // Inside Shopify's admin App Bridge mints a short-lived token per call; outside it (demo, tests) the URL has one.
  if (window.shopify && typeof window.shopify.idToken === 'function') return window.shopify.idToken();
  return new URLSearchParams(window.location.search).get('id_token') || '';
}

function newIdempotencyKey() {
  return window.crypto && window.crypto.randomUUID ? window.crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
}

async function call(method, path, body, headers = {}) {
  const sent = {Authorization: `Bearer ${await sessionToken()}`, Accept: 'application/json', ...headers};
  const form = body instanceof FormData; // a file upload: the browser writes the multipart boundary
  if (body !== undefined && !form) sent['Content-Type'] = 'application/json';
  const response = await fetch(`/api/admin/${path}`, {
    method,
    headers: sent,
    body: body === undefined || form ? body : JSON.stringify(body),
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, (data && data.error) || {});
  return data;
}

/** A support action: one Idempotency-Key per submission, so a retried request is recorded once. */
function act(path, body) {
  return call('POST', path, body, {'Idempotency-Key': newIdempotencyKey()});
}

const query = (params) => new URLSearchParams(Object.entries(params).filter(([, v]) => v !== '' && v != null));

/** A CSV export, saved by the browser: fetched with the session token (a plain link would carry none). */
async function download(path, filename) {
  const response = await fetch(`/api/admin/${path}`, {headers: {Authorization: `Bearer ${await sessionToken()}`}});
  if (!response.ok) {
    const data = await response.json().catch(() => null);
    throw new ApiError(response.status, (data && data.error) || {});
  }
  const link = document.createElement('a');
  link.href = URL.createObjectURL(await response.blob());
  link.download = filename;
  document.body.appendChild(link);
  link.click();
  link.remove();
}

export const api = {
  summary: () => call('GET', 'summary'),
  report: (name, params) => call('GET', `reports/${name}?${query(params)}`),
  reportCsv: (name, params) => download(`reports/${name}?${query({...params, format: 'csv'})}`, `loyalty-${name}.csv`),
  reportSettings: () => call('GET', 'reports/settings'),
  saveReportSettings: (body) => call('PUT', 'reports/settings', body),
  settings: () => call('GET', 'settings'),
  saveSettings: (settings) => call('PUT', 'settings', settings),
  locale: () => call('GET', 'locale'),
  saveLocale: (locale) => call('PUT', 'locale', {locale}),
  rules: () => call('GET', 'rules'),
  rulesHistory: () => call('GET', 'rules/history'),
  saveRules: (ruleSet) => call('PUT', 'rules', ruleSet),
  previewRules: (ruleSet, days) => call('POST', 'rules/preview', {rules: ruleSet, days}),
  tiers: () => call('GET', 'tiers'),
  tiersHistory: () => call('GET', 'tiers/history'),
  saveTiers: (programme) => call('PUT', 'tiers', programme),
  previewTiers: (programme) => call('POST', 'tiers/preview', {tiers: programme}),
  findMember: ({email, customerId}) => call('GET', `support/members?${query({email, customer_id: customerId})}`),
  history: (customerId) => call('GET', `support/members/${customerId}/history`),
  adjust: (customerId, body) => act(`support/members/${customerId}/adjustments`, body),
  reverse: (orderId, body) => act(`support/orders/${orderId}/reversals`, body),
  undo: (actionId, body) => act(`support/actions/${actionId}/undo`, body),
  cancelReward: (redemptionId, body) => act(`support/redemptions/${redemptionId}/cancel`, body),
  actions: (customerId) => call('GET', `support/actions?${query({customer_id: customerId})}`),
  keys: () => call('GET', 'support/keys'),
  createKey: (body) => call('POST', 'support/keys', body),
  revokeKey: (keyId) => call('POST', `support/keys/${keyId}/revoke`, {}),
  parked: () => call('GET', 'support/parked'),
  referralSettings: () => call('GET', 'referrals/settings'),
  saveReferralSettings: (settings) => call('PUT', 'referrals/settings', settings),
  milestones: () => call('GET', 'milestones'),
  saveMilestones: (programme) => call('PUT', 'milestones', programme),
  actionKeys: () => call('GET', 'action-keys'),
  createActionKey: (key) => call('POST', 'action-keys', key),
  revokeActionKey: (keyId) => call('DELETE', `action-keys/${encodeURIComponent(keyId)}`),
  referralStats: () => call('GET', 'referrals/stats'),
  referrals: (status) => call('GET', `referrals?${query({status})}`),
  approveReferral: (orderId, reason) => call('POST', `referrals/${orderId}/approve`, {reason}),
  replay: (deliveryId) => call('POST', `support/parked/${deliveryId}/replay`, {}),
  imports: () => call('GET', 'imports'),
  upload: ({file, source, dryRun}) => {
    const form = new FormData();
    form.append('source', source);
    form.append('dry_run', dryRun ? 'true' : 'false');
    form.append('file', file);
    return call('POST', 'imports', form);
  },
  undoImport: (batchId, reason) => call('POST', `imports/${batchId}/undo`, {reason}),
  expiry: () => call('GET', 'expiry'),
  saveExpiry: (body) => call('PUT', 'expiry', body),
  endpoints: () => call('GET', 'events/endpoints'),
  createEndpoint: (body) => call('POST', 'events/endpoints', body),
  enableEndpoint: (id) => call('POST', `events/endpoints/${id}/enable`, {}),
  disableEndpoint: (id) => call('POST', `events/endpoints/${id}/disable`, {}),
  deliveries: () => call('GET', 'events/deliveries?limit=50'),
  replayEvent: (body) => call('POST', 'events/replay', body),
  enableFlow: () => call('POST', 'events/flow', {}),
};
