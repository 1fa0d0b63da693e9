/** The frame every page sits in: Shopify's navigation menu when embedded, Polaris' navigation otherwise. */
import {AppProvider, Frame, Navigation} from '@shopify/polaris';
import {NavMenu} from '@shopify/app-bridge-react';
import {PolarisVizProvider} from '@shopify/polaris-viz';
import en from '@shopify/polaris/locales/en.json';
import fr from '@shopify/polaris/locales/fr.json';
import {config} from '../config.js';
import {t} from '../i18n.js';
import {AppLink, urlFor, usePath} from '../router.js';
import {PAGES, resolve} from '../pages/index.js';
import {ToastProvider} from './feedback.jsx';

const POLARIS_TRANSLATIONS = {en, fr};

function EmbeddedMenu() {
  return (
    <NavMenu>
      <a href={urlFor('')} rel="home">{t('nav.home')}</a>
      {PAGES.filter((p) => p.path).map((p) => (
        <a key={p.path} href={urlFor(p.path)}>{t(p.label)}</a>
      ))}
    </NavMenu>
  );
}

function SideNavigation({path}) {
  const section = path.split('/')[0];
  return (
    <Navigation location={urlFor(path)}>
      <Navigation.Section
        items={PAGES.map((p) => ({
          url: urlFor(p.path),
          label: t(p.label),
          icon: p.icon,
          selected: p.path === section,
        }))}
      />
    </Navigation>
  );
}

export function App() {
  const path = usePath();
  const {Component, params} = resolve(path);
  return (
    <AppProvider i18n={POLARIS_TRANSLATIONS[config.locale]} linkComponent={AppLink}>
      <PolarisVizProvider>
        <Frame navigation={config.embedded ? undefined : <SideNavigation path={path} />}>
          {config.embedded && <EmbeddedMenu />}
          <ToastProvider>
            <Component key={path} {...params} />
          </ToastProvider>
        </Frame>
      </PolarisVizProvider>
    </AppProvider>
  );
}
