/** Polaris' empty state with the app's own small picture (inline: nothing is fetched from a CDN). */
import {EmptyState} from '@shopify/polaris';

const PICTURE = `data:image/svg+xml,${encodeURIComponent(
  '<svg xmlns="http://www.w3.org/2000/svg" width="226" height="160" viewBox="0 0 226 160">' +
    '<circle cx="113" cy="80" r="60" fill="#f1f1f1"/><circle cx="113" cy="80" r="34" fill="#e3e3e3"/>' +
    '<path d="M98 80l10 10 20-22" stroke="#8a8a8a" stroke-width="6" fill="none" stroke-linecap="round"/></svg>',
)}`;

export function Empty({heading, children}) {
  return (
    <EmptyState heading={heading} image={PICTURE}>
      <p>{children}</p>
    </EmptyState>
  );
}
