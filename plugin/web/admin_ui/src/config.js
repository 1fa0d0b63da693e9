/** What the server tells the page: the shop, the staff's language, the support reason codes, and whether embedded. */

const element = document.getElementById('admin-config');
const raw = element ? JSON.parse(element.textContent) : {};

export const config = {
  shop: raw.shop || '',
  locale: raw.locale === 'fr' ? 'fr' : 'en',
  reasonCodes: raw.reason_codes || [],
  importSources: raw.import_sources || [],
  basePath: '/admin',
  // App Bridge's script (from Shopify's CDN) defines these elements only when Shopify embeds the page.
  embedded: Boolean(window.customElements && window.customElements.get('ui-nav-menu')),
};
