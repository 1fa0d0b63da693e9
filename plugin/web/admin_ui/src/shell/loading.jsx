/** Loading a page's data: a skeleton while it comes, a banner if it cannot, then the page. */
import {useCallback, useEffect, useState} from 'react';
import {Banner, Layout, Page, SkeletonBodyText, SkeletonPage, Card} from '@shopify/polaris';
import {t} from '../i18n.js';

/** {data, error, reload} of an API call; `data` is undefined until the first answer. */
export function useResource(load, deps) {
  const [state, setState] = useState({data: undefined, error: null});
  const reload = useCallback(() => {
    let current = true;
    load().then(
      (data) => current && setState({data, error: null}),
      (error) => current && setState({data: undefined, error}),
    );
    return () => {
      current = false;
    };
  }, deps); // eslint-disable-line react-hooks/exhaustive-deps
  useEffect(reload, [reload]);
  return {...state, reload};
}

/** Renders `children(data)` once `resource` has data; a skeleton or the API's refusal until then. */
export function Loaded({resource, title, children}) {
  if (resource.error) {
    return (
      <Page title={title}>
        <Banner tone="critical" title={t('couldNotLoad')}>
          <p>{resource.error.message}</p>
        </Banner>
      </Page>
    );
  }
  if (resource.data === undefined) {
    return (
      <div aria-busy="true">
      <SkeletonPage title={title}>
        <Layout>
          <Layout.Section>
            <Card>
              <SkeletonBodyText lines={4} />
            </Card>
          </Layout.Section>
        </Layout>
      </SkeletonPage>
      </div>
    );
  }
  return children(resource.data);
}
