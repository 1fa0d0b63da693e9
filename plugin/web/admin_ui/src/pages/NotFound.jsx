/** A path the admin has no page for. */
import {Banner, Page} from '@shopify/polaris';
import {t} from '../i18n.js';

export function NotFound() {
  return (
    <Page title={t('notFound.title')}>
      <Banner tone="warning" title={t('notFound.title')} action={{content: t('nav.home'), url: '/admin'}} />
    </Page>
  );
}
