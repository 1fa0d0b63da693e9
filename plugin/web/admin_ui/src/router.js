/** A small router over the History API: paths under /admin, the query string (shop, host, locale...) kept. */
import {useEffect, useState} from 'react';
import {config} from './config.js';

const CHANGED = 'admin:navigate';

/** The path below /admin, without slashes at either end: '' for Home, 'members/1001' for a member. */
export function currentPath() {
  return window.location.pathname.slice(config.basePath.length).replace(/^\/+|\/+$/g, '');
}

/** The URL of a page, keeping the query string Shopify (or the test) opened the app with. */
export function urlFor(path) {
  return `${config.basePath}${path ? `/${path}` : ''}${window.location.search}`;
}

export function navigate(path) {
  window.history.pushState(null, '', urlFor(path));
  window.dispatchEvent(new Event(CHANGED));
}

export function usePath() {
  const [path, setPath] = useState(currentPath);
  useEffect(() => {
    const update = () => setPath(currentPath());
    window.addEventListener('popstate', update); // back/forward, and App Bridge's navigation menu
    window.addEventListener(CHANGED, update);
    return () => {
      window.removeEventListener('popstate', update);
      window.removeEventListener(CHANGED, update);
    };
  }, []);
  return path;
}

/** Polaris' link component: same-app links change page without reloading. */
export function AppLink({url, children, external, ...rest}) {
  const inApp = !external && url.startsWith(config.basePath);
  const onClick = (event) => {
    if (!inApp || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    navigate(url.slice(config.basePath.length).split('?')[0].replace(/^\/+/, ''));
  };
  return (
    <a href={inApp ? `${url.split('?')[0]}${window.location.search}` : url} onClick={onClick} {...rest}>
      {children}
    </a>
  );
}
