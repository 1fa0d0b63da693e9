/** Toasts and the unsaved-changes bar: App Bridge's inside Shopify's admin, Polaris' own outside it. */
import {createContext, useCallback, useContext, useEffect, useState} from 'react';
import {ContextualSaveBar, Toast} from '@shopify/polaris';
import {SaveBar} from '@shopify/app-bridge-react';
import {config} from '../config.js';
import {t} from '../i18n.js';

const ToastContext = createContext(() => {});

/** Polaris 13's toast close button is an icon without a name; name it, as soon as Polaris draws it. */
function useNamedToastCloseButtons() {
  useEffect(() => {
    const name = () => document.querySelectorAll('[class*="Toast__CloseButton"]:not([aria-label])').forEach((button) => button.setAttribute('aria-label', t('dismiss')));
    const observer = new MutationObserver(name);
    observer.observe(document.body, {childList: true, subtree: true});
    return () => observer.disconnect();
  }, []);
}

export function ToastProvider({children}) {
  const [toast, setToast] = useState(null);
  useNamedToastCloseButtons();
  const show = useCallback((message, {error = false} = {}) => {
    if (config.embedded) window.shopify.toast.show(message, {isError: error});
    else setToast({message, error, key: Date.now()});
  }, []);
  return (
    <ToastContext.Provider value={show}>
      {children}
      {toast && <Toast key={toast.key} content={toast.message} error={toast.error} onDismiss={() => setToast(null)} />}
    </ToastContext.Provider>
  );
}

export const useToast = () => useContext(ToastContext);

/** Shown while a form has changes that are not saved; Save and Discard act on them. */
export function UnsavedChangesBar({dirty, saving, onSave, onDiscard}) {
  if (config.embedded) {
    return (
      <SaveBar id="unsaved-changes" open={dirty}>
        <button variant="primary" onClick={onSave} loading={saving ? '' : undefined}>{t('save')}</button>
        <button onClick={onDiscard}>{t('discard')}</button>
      </SaveBar>
    );
  }
  if (!dirty) return null;
  return (
    <ContextualSaveBar
      message={t('unsavedChanges')}
      saveAction={{content: t('save'), onAction: onSave, loading: saving}}
      discardAction={{content: t('discard'), onAction: onDiscard}}
    />
  );
}
