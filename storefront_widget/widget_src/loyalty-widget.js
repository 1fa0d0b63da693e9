/* Loyalty widget (ES2019), minified into extension/assets/ by `make widget` (storefront_widget/widget_build.py).
   Identity is the App Proxy's job, never ours. */
(() => {
  'use strict';
  const D = document;
  const STR = {
    en: {
      rewards: 'Rewards', close: 'Close', loading: 'Loading your rewards…', retry: 'Try again',
      loadError: 'Your rewards could not be loaded.', network: 'Connection problem. Please try again.',
      pts: { one: '{n} point', other: '{n} points' },
      available: 'Available to spend', balanceSay: 'Available balance: {pts}.',
      total: 'Balance: {pts}', pending: 'Pending: {pts}', pendingOn: '{pts} on {date}', expireOn: '{pts} expire on {date}',
      earn: 'Earn {pts} for every {money} you spend.', signIn: 'Sign in to see and spend your points',
      spendH: 'Spend your points', codesH: 'Your codes', historyH: 'Recent activity',
      noHistory: 'No activity yet.', noRewards: 'No rewards yet.',
      redeem: 'Redeem', redeemFor: ' {reward} for {pts}', need: '{pts} more needed',
      off: '{v} off', offSome: '{v} off selected items', freeShip: 'Free shipping', freeProduct: 'A free product', minSub: 'On orders of {money} or more',
      credit: '{v} in store credit', cashBack: '{v} store credit for every {pts}', choosePts: 'Points to spend',
      cashBackRange: 'From {min} to {max}, in steps of {step}', youGet: 'You get {v} in store credit',
      creditReady: '{v} was added to your store credit.', creditBalance: 'Your store credit balance: {v}',
      creditAtCheckout: 'It is applied at checkout when you are signed in.', creditLine: '+{v} store credit',
      preparingCredit: 'Adding {reward} to your store credit…',
      redeeming: 'Redeeming {reward}…', preparing: 'Creating your code for {reward}…',
      ready: 'Your code for {reward}: {code}', copy: 'Copy', copied: 'Copied',
      selected: 'Code selected. Copy it with your keyboard.',
      validUntil: 'Valid until {date}.', atCheckout: 'Enter it at checkout.',
      failed: '{reward} could not be issued. Your points were returned.',
      slow: 'Your code is taking longer than usual. It will appear under “Your codes” shortly.',
      status: { pending: 'Being prepared', issued: 'Ready', failed: 'Failed, points returned', cancelled: 'Cancelled' },
      kind: { earn: 'Earned', reverse: 'Order refunded', redeem: 'Redeemed', return: 'Points returned',
        adjust: 'Adjustment', bonus: 'Bonus', expire: 'Expired', forgive: 'Forgiven', import: 'Imported' },
      unavailable: { not_yet_available: 'Available from {date}', ended: 'Ended on {date}', sold_out: 'All claimed',
        limit_reached: 'You’ve reached the limit for this reward', other: 'Not available right now' },
      tierH: 'Your status', tierNone: 'No tier yet', keptUntil: 'Kept until {date}', renews: 'Membership renews on {date}',
      shipCode: 'Your free-shipping code: {code}',
      toNext: { spend: 'Spend {v} more{by} to reach {tier}', points: 'Earn {v} more{by} to reach {tier}',
        orders: '{v} more orders{by} to reach {tier}' }, by: ' by {date}', topTier: 'You’ve reached the top tier.',
      perk: { multiplier: '{x}× points on every order', entry: '{pts} when you reach {tier}', birthday: '{pts} on your birthday',
        freeShip: 'Free shipping' }, tiersH: 'Tiers',
      ptsAnd: '{pts} and {reward}', msH: 'Milestones', spendMore: 'Spend {money} more to earn {pts}', spendGoal: 'Spend {money}',
      spentSoFar: '{money} spent', thisYear: 'this year', goalDone: 'Reached. Well done!',
      punchesH: '{n} of {of} orders', punchGives: 'Every {of} orders earn {pts}', punchMin: 'orders of {money} or more',
      bdayH: 'Your birthday', bdayGives: 'Get {pts} on your birthday', bdayMonth: 'Get {pts} in your birthday month',
      bdayMonthL: 'Month', bdayDayL: 'Day', bdaySave: 'Save my birthday', bdaySaved: 'Birthday saved: {date}.',
      bdayYours: 'Your birthday: {date}', bdayLocked: 'You can change it again from {date}.',
      actionsH: 'Ways to earn more', actEarn: 'Earn {pts}', actFollow: 'Follow', actVisit: 'Visit', actAnswer: 'Answer',
      actSend: 'Send my answers', actDone: 'Thanks! {pts} added.', actAuto: 'Earned automatically',
      npsL: '0 = not at all likely, 10 = extremely likely',
      errors: { not_enough_points: 'You don’t have enough points for this reward.',
        unknown_reward: 'This reward is no longer available.', not_signed_in: 'Please sign in to spend your points.',
        reward_unavailable: 'This reward is not available right now.', bad_points: 'Choose a number of points within the range, in whole steps.' },
      referH: 'Refer a friend', referText: 'Give your friends {reward}. Get {pts} when their first order is confirmed.',
      yourLink: 'Your link', share: 'Share', shareTitle: 'A gift for your first order',
      offer: { fixed_amount: '{v} off your first order', percentage: '{v} off your first order',
        free_shipping: 'Free shipping on your first order' },
      giftH: 'A gift from your friend', giftPending: 'Your code is being prepared…', giftNone: 'Your friend’s link is noted at checkout.',
    },
    fr: {
      rewards: 'Récompenses', close: 'Fermer', loading: 'Chargement de vos récompenses…', retry: 'Réessayer',
      loadError: 'Impossible de charger vos récompenses.', network: 'Problème de connexion. Veuillez réessayer.',
      pts: { one: '{n} point', other: '{n} points' },
      available: 'Utilisables maintenant', balanceSay: 'Solde utilisable\u00a0: {pts}.',
      total: 'Solde\u00a0: {pts}', pending: 'En attente\u00a0: {pts}', pendingOn: '{pts} le {date}', expireOn: '{pts} expirent le {date}',
      earn: 'Gagnez {pts} pour chaque tranche de {money} dépensée.', signIn: 'Connectez-vous pour voir et utiliser vos points',
      spendH: 'Utiliser vos points', codesH: 'Vos codes', historyH: 'Activité récente',
      noHistory: 'Aucune activité pour le moment.', noRewards: 'Aucune récompense pour le moment.',
      redeem: 'Échanger', redeemFor: ' {reward} contre {pts}', need: 'Il vous manque {pts}',
      off: '{v} de réduction', offSome: '{v} de réduction sur une sélection', freeShip: 'Livraison gratuite', freeProduct: 'Un produit offert', minSub: 'Dès {money} d’achat',
      credit: '{v} d’avoir', cashBack: '{v} d’avoir pour {pts}', choosePts: 'Points à utiliser',
      cashBackRange: 'De {min} à {max}, par paliers de {step}', youGet: 'Vous recevez {v} d’avoir',
      creditReady: '{v} ont été ajoutés à votre avoir.', creditBalance: 'Solde de votre avoir : {v}',
      creditAtCheckout: 'Il s’applique au paiement lorsque vous êtes connecté.', creditLine: '+{v} d’avoir',
      preparingCredit: 'Ajout de « {reward} » à votre avoir…',
      redeeming: 'Échange en cours\u00a0: {reward}…', preparing: 'Création de votre code pour {reward}…',
      ready: 'Votre code pour {reward}\u00a0: {code}', copy: 'Copier', copied: 'Copié',
      selected: 'Code sélectionné. Copiez-le avec votre clavier.',
      validUntil: 'Valable jusqu’au {date}.', atCheckout: 'Saisissez-le lors du paiement.',
      failed: 'Impossible d’émettre «\u00a0{reward}\u00a0». Vos points vous ont été rendus.',
      slow: 'Votre code prend plus de temps que prévu. Il apparaîtra bientôt dans «\u00a0Vos codes\u00a0».',
      status: { pending: 'En préparation', issued: 'Prêt', failed: 'Échec, points rendus', cancelled: 'Annulé' },
      kind: { earn: 'Gagnés', reverse: 'Commande remboursée', redeem: 'Échangés', return: 'Points rendus',
        adjust: 'Ajustement', bonus: 'Bonus', expire: 'Expirés', forgive: 'Remis', import: 'Importés' },
      unavailable: { not_yet_available: 'Disponible à partir du {date}', ended: 'Terminée le {date}', sold_out: 'Épuisée',
        limit_reached: 'Vous avez atteint la limite pour cette récompense', other: 'Indisponible pour le moment' },
      tierH: 'Votre statut', tierNone: 'Pas encore de statut', keptUntil: 'Conservé jusqu’au {date}',
      renews: 'Adhésion renouvelée le {date}',
      shipCode: 'Votre code de livraison gratuite : {code}',
      toNext: { spend: 'Dépensez encore {v}{by} pour atteindre {tier}', points: 'Gagnez encore {v}{by} pour atteindre {tier}',
        orders: 'Encore {v} commandes{by} pour atteindre {tier}' }, by: ' d’ici le {date}',
      topTier: 'Vous avez atteint le statut le plus élevé.',
      perk: { multiplier: 'Points ×{x} sur chaque commande', entry: '{pts} en atteignant {tier}',
        birthday: '{pts} pour votre anniversaire', freeShip: 'Livraison gratuite' }, tiersH: 'Statuts',
      ptsAnd: '{pts} et {reward}', msH: 'Paliers', spendMore: 'Dépensez encore {money} pour gagner {pts}', spendGoal: 'Dépensez {money}',
      spentSoFar: '{money} dépensés', thisYear: 'cette année', goalDone: 'Atteint. Bravo\u00a0!',
      punchesH: '{n} commandes sur {of}', punchGives: 'Toutes les {of} commandes\u00a0: {pts}', punchMin: 'commandes d’au moins {money}',
      bdayH: 'Votre anniversaire', bdayGives: '{pts} le jour de votre anniversaire', bdayMonth: '{pts} pendant le mois de votre anniversaire',
      bdayMonthL: 'Mois', bdayDayL: 'Jour', bdaySave: 'Enregistrer mon anniversaire', bdaySaved: 'Anniversaire enregistré\u00a0: {date}.',
      bdayYours: 'Votre anniversaire\u00a0: {date}', bdayLocked: 'Modifiable à nouveau à partir du {date}.',
      actionsH: 'Gagner plus de points', actEarn: 'Gagnez {pts}', actFollow: 'Suivre', actVisit: 'Visiter', actAnswer: 'Répondre',
      actSend: 'Envoyer mes réponses', actDone: 'Merci\u00a0! {pts} ajoutés.', actAuto: 'Attribués automatiquement',
      npsL: '0 = pas du tout probable, 10 = très probable',
      errors: { not_enough_points: 'Vous n’avez pas assez de points pour cette récompense.',
        unknown_reward: 'Cette récompense n’est plus disponible.', not_signed_in: 'Connectez-vous pour utiliser vos points.',
        reward_unavailable: 'Cette récompense n’est pas disponible pour le moment.', bad_points: 'Choisissez un nombre de points dans la plage, par paliers entiers.' },
      referH: 'Parrainer un ami', referText: 'Offrez à vos amis\u00a0: {reward}. Recevez {pts} quand leur première commande est confirmée.',
      yourLink: 'Votre lien', share: 'Partager', shareTitle: 'Un cadeau pour votre première commande',
      offer: { fixed_amount: '{v} de réduction sur votre première commande', percentage: '{v} de réduction sur votre première commande',
        free_shipping: 'Livraison gratuite sur votre première commande' },
      giftH: 'Un cadeau de votre ami', giftPending: 'Votre code est en préparation…', giftNone: 'Le lien de votre ami sera pris en compte au paiement.',
    },
  };
  const FOCUSABLE = 'button:not([disabled]),a[href],[tabindex]:not([tabindex="-1"])';
  const STAR = 'M12 2.5l2.9 6 6.6.9-4.8 4.6 1.2 6.5L12 17.4l-5.9 3.1 1.2-6.5L2.5 9.4l6.6-.9z';
  const CROSS = 'M6 6l12 12M18 6L6 18';
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const shared = {}; // first /widget fetch, shared by both roots
  let seq = 0;

  // Referrals: /apps/loyalty/r/CODE sends the friend here with ?loyalty_referral=TOKEN (the App Proxy can set no
  // cookie). Keep it in a first-party cookie and in the cart, as the attribute the order will carry.
  const REF = 'loyalty_referral';
  const REF_ATTR = '_loyalty_referral';
  const TOKEN_RE = /^[0-9a-f]{1,32}\.[0-9a-f]{24}$/;
  function referralToken() {
    let token = null;
    try {
      const url = new URL(location.href);
      token = url.searchParams.get(REF);
      if (token) {
        url.searchParams.delete(REF);
        history.replaceState(history.state, '', url.pathname + url.search + url.hash);
      }
    } catch {}
    if (token && TOKEN_RE.test(token)) {
      D.cookie = `${REF}=${token}; path=/; max-age=${30 * 86400}; SameSite=Lax` + (location.protocol === 'https:' ? '; Secure' : '');
    } else {
      const m = D.cookie.match(/(?:^|; )loyalty_referral=([^;]+)/);
      token = m && TOKEN_RE.test(m[1]) ? m[1] : null;
    }
    return token;
  }
  const refToken = referralToken();
  function tagCart(token) {
    let root = '/';
    try {
      root = (window.Shopify && Shopify.routes && Shopify.routes.root) || '/';
    } catch {}
    const key = 'lw-cart-ref';
    try {
      if (sessionStorage.getItem(key) === token) return;
    } catch {}
    fetch(root + 'cart/update.js', { method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ attributes: { [REF_ATTR]: token } }) })
      .then((r) => r.ok && sessionStorage.setItem(key, token)).catch(() => {});
  }
  if (refToken) tagCart(refToken);

  // Text goes in as text nodes, never HTML.
  function h(tag, attrs, ...kids) {
    const el = D.createElement(tag);
    for (const k in attrs) {
      const v = attrs[k];
      if (v == null || v === false) continue;
      if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : v);
    }
    el.append(...kids.flat(2).filter((c) => c != null && c !== false));
    return el;
  }
  const icon = (d) => {
    const s = h('span', { class: 'lw-ico', 'aria-hidden': 'true' });
    s.innerHTML = `<svg viewBox="0 0 24 24" focusable="false"><path d="${d}"/></svg>`;
    return s;
  };

  // Throws {status, code, message}; status 0: network.
  async function api(proxy, path, body) {
    const headers = { Accept: 'application/json' };
    if (body) headers['Content-Type'] = 'application/json';
    let res, json;
    try {
      res = await fetch(proxy + path, { method: body ? 'POST' : 'GET', body, headers, credentials: 'same-origin' });
    } catch {
      throw { status: 0, code: 'network' };
    }
    try {
      json = await res.json();
    } catch {}
    if (res.ok && json) return json;
    const e = (json && json.error) || {};
    throw { status: res.status, code: e.code, message: e.message, fields: e.fields };
  }

  const uuid = () =>
    crypto.randomUUID ? crypto.randomUUID()
      : '10000000-1000-4000-8000-100000000000'.replace(/[018]/g, (c) => (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16));

  // Black or white on the accent: always >= 4.5:1.
  function onColour(hex) {
    if (!/^#[0-9a-f]{6}$/i.test(hex || '')) return null;
    const L = [0.2126, 0.7152, 0.0722].reduce((sum, w, i) => {
      const c = parseInt(hex.substr(1 + 2 * i, 2), 16) / 255;
      return sum + w * (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
    }, 0);
    return 1.05 / (L + 0.05) >= (L + 0.05) / 0.05 ? '#fff' : '#111';
  }

  function mount(root, inline) {
    const ds = root.dataset;
    const proxy = (ds.proxy || '/apps/loyalty').replace(/\/+$/, '');
    let tag = ds.locale || D.documentElement.lang || 'en';
    try {
      tag = Intl.getCanonicalLocales(tag)[0];
    } catch {
      tag = 'en';
    }
    const T = STR[/^fr/i.test(tag) ? 'fr' : 'en'];
    const nf = new Intl.NumberFormat(tag);
    const plural = new Intl.PluralRules(tag);
    const df = new Intl.DateTimeFormat(tag, { year: 'numeric', month: 'short', day: 'numeric' });
    const fmt = (s, v) => s.replace(/\{(\w+)\}/g, (_, k) => v[k]);
    const pts = (n) => fmt(T.pts[plural.select(n)] || T.pts.other, { n: nf.format(n) });
    const date = (iso) => (iso && !isNaN(new Date(iso)) ? df.format(new Date(iso)) : '');
    // A shop-local calendar day ("2026-12-31") shown as that day wherever the shopper is.
    const dayf = new Intl.DateTimeFormat(tag, { day: 'numeric', month: 'short', timeZone: 'UTC' });
    const day = (d, f) => (/^\d{4}-\d{2}-\d{2}$/.test(d || '') ? (f || dayf).format(new Date(d + 'T12:00:00Z')) : '');
    const dayY = new Intl.DateTimeFormat(tag, { day: 'numeric', month: 'short', year: 'numeric', timeZone: 'UTC' });
    const money = (amount, opts) => {
      try {
        return new Intl.NumberFormat(tag, { style: 'currency', currency: data.shop.currency || 'USD', ...opts }).format(amount);
      } catch {
        return nf.format(amount);
      }
    };
    const errText = (e) => T.errors[e.code] || e.message || T.network;
    const line = (...parts) => parts.filter(Boolean).join(' · ');
    const id = 'lw' + ++seq;
    let data = null, open = false, busy = false, following = 0, checks = 0;
    const retryKeys = {}; // reward id -> key of a click to retry

    const live = h('div', { class: 'lw-sr', role: 'status', 'aria-live': 'polite' });
    const sec = (full) => h('div', { class: full ? 'lw-sec lw-full' : 'lw-sec', hidden: true });
    const st = sec(1), sum = sec(1), tr = sec(1), rw = sec(), cd = sec(), hi = sec(), rf = sec();
    const ms = sec(1); // milestones: thresholds, punch cards, birthday, actions (GET /milestones)
    const res = h('div', { class: 'lw-result', tabindex: '-1', hidden: true });
    const body = h('div', { class: 'lw-body' }, st, sum, tr, rf, ms, h('div', { class: 'lw-sec' }, res, rw), cd, hi);
    const head = h('div', { class: 'lw-head' }, h('h2', { class: 'lw-title', id: id + 't', tabindex: '-1', text: T.rewards }));
    const box = h('div', { class: inline ? 'lw lw-inline' : 'lw', 'data-pos': ds.position === 'left' ? 'left' : 'right' });
    const fg = onColour(ds.accent);
    if (fg) box.setAttribute('style', `--lw-accent:${ds.accent};--lw-on-accent:${fg}`);
    let launcher, badge, dialog, backdrop;

    if (inline) {
      root.textContent = '';
      box.append(h('section', { class: 'lw-panel', 'aria-labelledby': id + 't' }, head, body, live));
    } else {
      badge = h('span', { class: 'lw-badge', hidden: true });
      launcher = h('button', { type: 'button', class: 'lw-launcher', 'aria-haspopup': 'dialog', 'aria-expanded': 'false',
        'aria-controls': id + 'd', onclick: () => (open ? close() : show()) }, icon(STAR), h('span', { text: T.rewards }), badge);
      backdrop = h('div', { class: 'lw-backdrop', hidden: true, onclick: close });
      head.append(h('button', { type: 'button', class: 'lw-x', 'aria-label': T.close, onclick: close }, icon(CROSS)));
      dialog = h('div', { class: 'lw-panel lw-dialog', id: id + 'd', role: 'dialog', 'aria-modal': 'true',
        'aria-labelledby': id + 't', hidden: true, onkeydown: trap }, head, body, live);
      box.append(launcher, backdrop, dialog);
      setBadge(/^\d+$/.test(ds.points) ? +ds.points : null); // server-rendered
      D.addEventListener('focusin', (e) => open && !dialog.contains(e.target) && focusables()[0].focus());
    }
    root.append(box);

    function setBadge(n) {
      if (!badge) return;
      badge.hidden = n == null;
      badge.textContent = n == null ? '' : pts(n);
    }

    function say(text) {
      live.textContent = '';
      setTimeout(() => (live.textContent = text), 100);
    }

    // Re-fill a section, keeping focus on the same control (data-k).
    function fill(el, ...kids) {
      const a = D.activeElement;
      const had = el.contains(a);
      const key = had && a.dataset.k;
      el.textContent = '';
      el.append(...kids.flat(2).filter(Boolean));
      el.hidden = !el.firstChild;
      if (had) (el.querySelector(`[data-k="${key}"]:not([disabled])`) || el.querySelector('h3') || head.firstChild).focus();
    }
    const h3 = (text) => h('h3', { class: 'lw-h3', tabindex: '-1', text });
    const p = (cls, text) => h('p', { class: cls, text });

    const focusables = () => [...dialog.querySelectorAll(FOCUSABLE)].filter((n) => n.getClientRects().length);
    function trap(e) {
      if (e.key === 'Escape') {
        e.preventDefault();
        close();
      } else if (e.key === 'Tab') {
        const f = focusables();
        const i = f.indexOf(D.activeElement);
        const to = e.shiftKey ? (i === 0 ? f[f.length - 1] : null) : i === f.length - 1 ? f[0] : null;
        if (to) {
          e.preventDefault();
          to.focus();
        }
      }
    }
    function show() {
      open = true;
      dialog.hidden = backdrop.hidden = false;
      launcher.setAttribute('aria-expanded', 'true');
      focusables()[0].focus();
      if (!data) load();
    }
    function close() {
      if (!open) return;
      open = false;
      dialog.hidden = backdrop.hidden = true;
      launcher.setAttribute('aria-expanded', 'false');
      launcher.focus();
    }

    function load(fresh) {
      if (!data) fill(st, p('lw-muted', T.loading));
      const req = !fresh && shared[proxy] || api(proxy, '/widget');
      if (!fresh) shared[proxy] = req;
      return req.then((d) => {
        ['rewards', 'redemptions', 'history'].forEach((k) => (d[k] = d[k] || []));
        d.program = d.program || {};
        d.shop = d.shop || {};
        if (d.customer) d.customer.pending_until = d.customer.pending_until || [];
        if (!data && d.customer) say(fmt(T.balanceSay, { pts: pts(d.customer.available) }));
        data = d;
        fill(st);
        render();
        loadMilestones();
        if (!referral) loadReferral();
      }, (e) => {
        delete shared[proxy];
        if (data) return;
        fill(st, p('lw-error', `${T.loadError} ${errText(e)}`),
          h('button', { type: 'button', class: 'lw-btn lw-btn2', 'data-k': 'retry', onclick: () => load(true) }, T.retry));
        say(T.loadError);
      });
    }

    // The merchant's own title names the items ("Summer collection"); the first line stays in the shopper's language.
    const onItems = (r) => [r.collection_ids, r.product_ids, r.variant_ids].some((ids) => ids && ids.length);
    function rewardTitle(r) {
      const off = onItems(r) ? T.offSome : T.off;
      if (r.kind === 'fixed_amount' && r.amount) return fmt(off, { v: money(r.amount) });
      if (r.kind === 'percentage' && r.percent) return fmt(off, { v: money(r.percent / 100, { style: 'percent', maximumFractionDigits: 2 }) });
      if (r.kind === 'free_product' && r.title === 'Free product') return T.freeProduct; // the default title
      if (r.kind === 'store_credit' && r.amount) return fmt(T.credit, { v: money(r.amount) });
      if (r.kind === 'cash_back' && r.amount) return fmt(T.cashBack, { v: money(r.amount), pts: pts(r.points) });
      return r.kind === 'free_shipping' ? T.freeShip : r.title;
    }
    // Why a limited reward cannot be redeemed now, in the shopper's language (the server's message is English).
    function unavailableText(r) {
      const why = r.unavailable || {};
      const at = why.code === 'not_yet_available' ? r.available_from : why.code === 'ended' ? r.available_until : null;
      return fmt(T.unavailable[why.code] || T.unavailable.other, { date: at ? date(at) : '' });
    }
    const titleOf = (red) => {
      const r = data.rewards.find((x) => x.title === red.reward);
      return r ? rewardTitle(r) : red.reward;
    };

    function render() {
      const c = data.customer;
      const earn = data.program.earn;
      const rule = earn && earn.per_amount ? fmt(T.earn, { pts: pts(earn.points), money: money(earn.per_amount) }) : data.program.description;
      setBadge(c ? c.balance : null);
      if (c) {
        fill(sum, p('lw-muted lw-small', T.available), p('lw-big', pts(c.available)),
          c.pending > 0 && p('lw-small', line(fmt(T.total, { pts: pts(c.balance) }), fmt(T.pending, { pts: pts(c.pending) }))),
          c.pending_until.map((x) => p('lw-small lw-muted', fmt(T.pendingOn, { pts: pts(x.points), date: date(x.available_at) }))),
          c.next_expiry && p('lw-small lw-expiry', fmt(T.expireOn, { pts: pts(c.next_expiry.points), date: day(c.next_expiry.date) })),
          p('lw-small lw-muted', rule));
      } else {
        let href = data.sign_in_url || ds.signInUrl;
        if (!/^(\/(?!\/)|https:\/\/)/.test(href)) href = '/account/login';
        fill(sum, p('', rule), h('a', { class: 'lw-btn lw-link', href }, T.signIn));
      }

      fill(tr, data.tier && tierSection(data.tier, c));

      fill(rw, h3(T.spendH), data.rewards.length ? h('ul', { class: 'lw-list' }, data.rewards.map((r) => {
        const name = rewardTitle(r);
        let action = null;
        if (r.available === false) {
          action = p('lw-need lw-unavailable', unavailableText(r));
        } else if (c && r.affordable && r.kind === 'cash_back') {
          action = cashBackChooser(r, name, c.available);
        } else if (c && r.affordable) {
          action = h('button', { type: 'button', class: 'lw-btn', 'data-k': 'r' + r.id, disabled: busy, onclick: (e) => redeem(r, e.currentTarget) },
            T.redeem, h('span', { class: 'lw-sr', text: fmt(T.redeemFor, { reward: name, pts: pts(r.points) }) }));
        } else if (c) {
          action = p('lw-need', fmt(T.need, { pts: pts(Math.max((r.min_points || r.points) - c.available, 1)) }));
        }
        return h('li', { class: 'lw-item' }, h('div', {}, p('lw-strong', name),
          onItems(r) && !/ off selected items$/.test(r.title) && p('lw-small', r.title), // a default title says no more
          p('lw-small lw-muted', r.kind === 'cash_back'
            ? fmt(T.cashBackRange, { min: pts(r.min_points || r.points), max: pts(r.max_points), step: pts(r.points) })
            : line(pts(r.points), r.min_subtotal && fmt(T.minSub, { money: money(r.min_subtotal) })))), action);
      })) : p('lw-muted', T.noRewards));

      const reds = data.redemptions;
      fill(cd, reds.length && [h3(T.codesH), h('ul', { class: 'lw-list' }, reds.map((r) => h('li', { class: 'lw-item lw-wrap' },
        h('div', {}, p('lw-strong', titleOf(r)),
          p('lw-small lw-muted', line(T.status[r.status] || r.status, r.code && fmt(T.validUntil, { date: date(r.ends_at) }),
            r.store_credit && fmt(T.creditLine, { v: creditMoney(r.store_credit, r.store_credit.amount) })))),
        r.code && r.status === 'issued' && codeBox(r.code, 'c' + r.id))))]);

      fill(hi, c && [h3(T.historyH), data.history.length ? h('ul', { class: 'lw-list' }, data.history.map((x) => {
        const kind = T.kind[x.kind] || x.kind;
        const own = x.label && x.label !== x.kind;
        return h('li', { class: 'lw-item' }, h('div', {}, p('', own ? x.label : kind), p('lw-small lw-muted', line(own && kind, date(x.at))),
          x.explanation && p('lw-small lw-muted', x.explanation)),
          p(x.points > 0 ? 'lw-pts lw-plus' : 'lw-pts', (x.points > 0 ? '+' : '') + nf.format(x.points)));
      })) : p('lw-muted', T.noHistory)]);

      // An older code may still be pending: look again soon.
      if (!following && reds.some((r) => r.status === 'pending') && checks++ < 12) {
        setTimeout(() => (open || inline) && !following && load(true), 5000);
      }
    }

    let referral = null, refChecks = 0;
    function loadReferral() {
      const q = refToken ? '?token=' + encodeURIComponent(refToken) : '';
      api(proxy, '/referral' + q).then((r) => {
        referral = r;
        renderReferral();
        if (r.friend && r.friend.code_status === 'pending' && refChecks++ < 20) setTimeout(loadReferral, 2000);
      }, () => {});
    }
    // The friend's reward in the shopper's language and the shop's currency; the server's English title otherwise.
    function offerText(o, title) {
      if (!o || !T.offer[o.kind]) return title || '';
      const v = o.kind === 'percentage' ? money(o.percent / 100, { style: 'percent', maximumFractionDigits: 2 }) : money(o.amount);
      return fmt(T.offer[o.kind], { v });
    }
    function renderReferral() {
      const r = referral;
      if (!r || !r.enabled) return fill(rf);
      const gift = r.friend && [h3(T.giftH), p('lw-strong', offerText(r.friend.offer, r.friend.reward)),
        r.friend.code ? codeBox(r.friend.code, 'gift') : p('lw-small lw-muted', r.friend.code_status === 'pending' ? T.giftPending : T.giftNone),
        r.friend.code && p('lw-small', T.atCheckout)];
      let mine = null;
      if (r.link) {
        const url = location.origin + r.link.path;
        const text = h('code', { class: 'lw-code lw-url', text: url });
        const btn = h('button', { type: 'button', class: 'lw-btn', 'data-k': 'share', onclick: () => shareLink(url, text, btn) }, T.share);
        mine = [h3(T.referH), p('lw-small', fmt(T.referText, { reward: offerText(r.friend_reward_offer, r.friend_reward), pts: grantText({ points: r.advocate_points, reward: r.advocate_reward }) })),
          p('lw-small lw-muted', T.yourLink), h('div', { class: 'lw-codebox' }, text, btn)];
      }
      fill(rf, gift, mine);
    }
    async function shareLink(url, el, btn) {
      if (navigator.share) {
        try {
          await navigator.share({ title: T.shareTitle, url });
          return;
        } catch (e) {
          if (e && e.name === 'AbortError') return; // the shopper closed the share sheet
        }
      }
      copy(url, el, btn);
    }

    // Store credit is in its account's currency, which is the shop's.
    const creditMoney = (sc, amount) => money(amount, { currency: sc.currency || data.shop.currency || 'USD' });

    // Cash back: the shopper picks the points (whole steps within the bounds, and what they have) and sees the credit.
    function cashBackChooser(r, name, available) {
      const step = r.points, least = r.min_points || step;
      const most = Math.min(r.max_points, Math.floor(available / step) * step);
      const inputId = id + 'cb' + r.id;
      const input = h('input', { type: 'number', class: 'lw-num', id: inputId, min: least, max: most, step, value: least, inputmode: 'numeric' });
      const gets = p('lw-small', '');
      const valid = () => {
        const n = Number(input.value);
        return Number.isInteger(n) && n >= least && n <= most && n % step === 0 ? n : null;
      };
      const update = () => {
        const n = valid();
        gets.textContent = n ? fmt(T.youGet, { v: money((n / step) * Number(r.amount)) }) : T.errors.bad_points;
        btn.disabled = busy || !n;
      };
      const btn = h('button', { type: 'button', class: 'lw-btn', 'data-k': 'r' + r.id, disabled: busy,
        onclick: (e) => valid() && redeem(r, e.currentTarget, valid()) },
        T.redeem, h('span', { class: 'lw-sr', text: fmt(T.redeemFor, { reward: name, pts: pts(valid() || least) }) }));
      input.addEventListener('input', update);
      update();
      return h('div', { class: 'lw-chooser' }, h('label', { for: inputId, class: 'lw-small', text: T.choosePts }), input, gets, btn);
    }

    // The shop's tiers: the shopper's tier and its benefits, how long it is kept, and what the next one takes.
    function perks(t) {
      return [
        t.multiplier && t.multiplier !== '1' && fmt(T.perk.multiplier, { x: nf.format(+t.multiplier) }),
        t.entry_reward > 0 && fmt(T.perk.entry, { pts: pts(t.entry_reward), tier: t.name }),
        t.birthday_reward > 0 && fmt(T.perk.birthday, { pts: pts(t.birthday_reward) }),
        t.free_shipping && T.perk.freeShip,
        ...(t.perks || []),
      ].filter(Boolean);
    }
    function tierSection(t, c) {
      const now = t.current;
      const next = t.progress;
      const amount = next && (t.metric === 'spend' ? money(next.needed) : t.metric === 'points' ? pts(next.needed) : nf.format(next.needed));
      const toNext = next && fmt(T.toNext[t.metric], { v: amount, tier: next.name, by: next.by ? fmt(T.by, { date: day(next.by) }) : '' });
      return [
        h3(T.tierH),
        h('div', { class: 'lw-tier' },
          p('lw-tier-name', now ? now.name : T.tierNone),
          now && t.kept_until && p('lw-small', fmt(T.keptUntil, { date: day(t.kept_until, dayY) })),
          now && t.paid_until && p('lw-small', fmt(T.renews, { date: day(t.paid_until, dayY) })),
          now && h('ul', { class: 'lw-perks' }, perks(now).map((x) => h('li', { class: 'lw-small', text: x }))),
          now && t.free_shipping_code && p('lw-small lw-tier-code', fmt(T.shipCode, { code: t.free_shipping_code.code }))),
        c && (toNext ? p('lw-progress', toNext) : now && p('lw-small lw-muted', T.topTier)),
        !c && toNext && p('lw-small lw-muted', toNext),
      ];
    }

    // Milestones: read after the widget (its own call, so the hottest read stays one statement).
    let mdata = null;
    const mKeys = {}; // action id -> key of a click to retry
    function loadMilestones() {
      return api(proxy, '/milestones').then((m) => {
        mdata = m;
        renderMilestones();
      }, () => {});
    }
    function meter(value, max, label) {
      return h('div', { class: 'lw-meter', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': max, 'aria-valuenow': Math.min(value, max), 'aria-label': label },
        h('span', { style: `width:${Math.min(100, Math.round((value / max) * 100))}%` }));
    }
    // What a threshold or a card grants: points, a catalogue reward ("$10.00 off"), or both.
    const grantText = (x) => (x.reward ? (x.points > 0 ? fmt(T.ptsAnd, { pts: pts(x.points), reward: rewardTitle(x.reward) }) : rewardTitle(x.reward)) : pts(x.points));
    function renderMilestones() {
      const m = mdata, c = data && data.customer;
      if (!m) return;
      const goals = m.thresholds.map((t) => {
        const spent = Number(t.spent), amount = Number(t.amount);
        const name = t.title || fmt(T.spendGoal, { money: money(t.amount) });
        return h('li', { class: 'lw-item lw-col', 'data-k': 't' + t.id }, p('lw-strong', name),
          c && meter(t.complete ? amount : spent - amount * t.reached, amount, line(name, fmt(T.spentSoFar, { money: money(t.spent) }))),
          p('lw-small', t.complete ? T.goalDone : fmt(T.spendMore, { money: money(c ? t.remaining : t.amount), pts: grantText(t) })),
          c && p('lw-small lw-muted', line(fmt(T.spentSoFar, { money: money(t.spent) }), t.period === 'calendar_year' && T.thisYear)));
      });
      const cards = m.punch_cards.map((k) => h('li', { class: 'lw-item lw-col', 'data-k': 'p' + k.id },
        p('lw-strong', k.title || fmt(T.punchGives, { of: k.every, pts: grantText(k) })),
        h('ol', { class: 'lw-punches', 'aria-label': fmt(T.punchesH, { n: k.punches, of: k.every }) },
          Array.from({ length: k.every }, (_, i) => h('li', { class: i < k.punches ? 'lw-punch lw-on' : 'lw-punch' }))),
        p('lw-small lw-muted', line(fmt(T.punchGives, { of: k.every, pts: grantText(k) }), k.min_subtotal && fmt(T.punchMin, { money: money(k.min_subtotal) })))));
      fill(ms, (goals.length || cards.length) && [h3(T.msH), h('ul', { class: 'lw-list' }, goals, cards)],
        m.birthday.enabled && c && birthdaySection(m.birthday),
        m.actions.length && [h3(T.actionsH), h('ul', { class: 'lw-list' }, m.actions.map((a) => actionItem(a, c)))]);
    }
    // The server's per-field messages ("February has 29 days"), flattened; English, like every server message.
    const fieldText = (e) => {
      const out = [];
      const walk = (v) => (typeof v === 'string' ? out.push(v) : v && typeof v === 'object' && Object.values(v).forEach(walk));
      walk(e.fields);
      return out.join(' ');
    };
    const monthName = (n) => new Intl.DateTimeFormat(tag, { month: 'long', timeZone: 'UTC' }).format(new Date(Date.UTC(2024, n - 1, 1)));
    const birthdayText = (b) => day(`2024-${String(b.month).padStart(2, '0')}-${String(b.day).padStart(2, '0')}`);
    function birthdaySection(b) {
      const gives = p('lw-small', fmt(b.when === 'month' ? T.bdayMonth : T.bdayGives, { pts: pts(b.points) }));
      const given = b.given;
      if (given && !given.changeable) {
        return [h3(T.bdayH), gives, p('', fmt(T.bdayYours, { date: birthdayText(given) })),
          given.changeable_from && p('lw-small lw-muted', fmt(T.bdayLocked, { date: date(given.changeable_from) }))];
      }
      const month = h('select', { id: id + 'bm', class: 'lw-num' }, Array.from({ length: 12 }, (_, i) =>
        h('option', { value: i + 1, selected: given && given.month === i + 1 }, monthName(i + 1))));
      const dayIn = h('input', { id: id + 'bd', class: 'lw-num', type: 'number', min: 1, max: 31, inputmode: 'numeric', value: given ? given.day : '' });
      const msg = p('lw-small', '');
      msg.setAttribute('role', 'status');
      const save = h('button', { type: 'submit', class: 'lw-btn', 'data-k': 'bday' }, T.bdaySave);
      const form = h('form', { class: 'lw-bday', onsubmit: async (e) => {
        e.preventDefault();
        save.disabled = true;
        try {
          const r = await api(proxy, '/birthday', JSON.stringify({ month: Number(month.value), day: Number(dayIn.value) }));
          mdata.birthday.given = r.birthday;
          renderMilestones();
          say(fmt(T.bdaySaved, { date: birthdayText(r.birthday) }));
        } catch (err) {
          msg.textContent = fieldText(err) || errText(err);
          msg.className = 'lw-small lw-error';
          save.disabled = false;
        }
      } },
      h('label', { for: id + 'bm', class: 'lw-small', text: T.bdayMonthL }), month,
      h('label', { for: id + 'bd', class: 'lw-small', text: T.bdayDayL }), dayIn, save);
      return [h3(T.bdayH), gives, given && p('', fmt(T.bdayYours, { date: birthdayText(given) })), form, msg];
    }
    function actionItem(a, c) {
      const head = h('div', {}, p('lw-strong', a.title), p('lw-small lw-muted', fmt(T.actEarn, { pts: pts(a.points) })));
      if (!c) return h('li', { class: 'lw-item' }, head);
      if (a.kind === 'server') return h('li', { class: 'lw-item' }, head, p('lw-small lw-muted', T.actAuto));
      if (!a.available) return h('li', { class: 'lw-item' }, head, p('lw-need lw-unavailable', a.reason || T.unavailable.other));
      const msg = p('lw-small', '');
      const send = async (btn, answers) => {
        btn.disabled = true;
        mKeys[a.id] = mKeys[a.id] || uuid();
        try {
          await api(proxy, '/actions/' + encodeURIComponent(a.id), JSON.stringify({ idempotency_key: mKeys[a.id], answers }));
          delete mKeys[a.id];
          say(fmt(T.actDone, { pts: pts(a.points) }));
          load(true);
        } catch (err) {
          if (err.status && err.status < 500) delete mKeys[a.id];
          msg.textContent = fieldText(err) || errText(err);
          msg.className = 'lw-small lw-error';
          btn.disabled = false;
        }
      };
      if (a.kind === 'survey') {
        const fields = a.questions.map((q) => {
          const qid = id + 'q' + a.id + q.key;
          const input = q.type === 'nps'
            ? h('select', { id: qid, class: 'lw-num', 'data-q': q.key }, h('option', { value: '' }, '–'), Array.from({ length: 11 }, (_, n) => h('option', { value: n }, String(n))))
            : h('textarea', { id: qid, class: 'lw-text', 'data-q': q.key, maxlength: 1000, rows: 2 });
          return h('div', { class: 'lw-q' }, h('label', { for: qid, class: 'lw-small', text: q.text }), q.type === 'nps' && p('lw-small lw-muted', T.npsL), input);
        });
        const btn = h('button', { type: 'submit', class: 'lw-btn', 'data-k': 'a' + a.id }, T.actSend);
        const form = h('form', { class: 'lw-survey', onsubmit: (e) => {
          e.preventDefault();
          const answers = {};
          fields.forEach((f) => {
            const el = f.querySelector('[data-q]');
            answers[el.dataset.q] = el.tagName === 'SELECT' ? (el.value === '' ? null : Number(el.value)) : el.value;
          });
          send(btn, answers);
        } }, fields, btn);
        return h('li', { class: 'lw-item lw-col' }, head, form, msg);
      }
      const btn = h('a', { class: 'lw-btn', href: a.url, target: '_blank', rel: 'noopener', 'data-k': 'a' + a.id,
        onclick: (e) => send(e.currentTarget) }, a.kind === 'follow' ? T.actFollow : T.actVisit);
      return h('li', { class: 'lw-item' }, head, h('div', {}, btn, msg));
    }

    function codeBox(code, key) {
      const text = h('code', { class: 'lw-code', text: code });
      const btn = h('button', { type: 'button', class: 'lw-btn lw-btn2', 'data-k': key, onclick: () => copy(code, text, btn) }, T.copy);
      return h('div', { class: 'lw-codebox' }, text, btn);
    }

    async function copy(code, el, btn) {
      let ok = false;
      try {
        await navigator.clipboard.writeText(code);
        ok = true;
      } catch {
        const range = D.createRange(); // fallback: select it
        range.selectNodeContents(el);
        getSelection().removeAllRanges();
        getSelection().addRange(range);
        try {
          ok = D.execCommand('copy');
        } catch {}
      }
      say(ok ? T.copied : T.selected);
      if (ok) {
        const label = btn.textContent;
        btn.textContent = T.copied;
        setTimeout(() => (btn.textContent = label), 2000);
      }
    }

    function result(cls, ...kids) {
      res.className = 'lw-result ' + cls;
      res.textContent = '';
      res.append(...kids);
      res.hidden = false;
    }
    const tell = (cls, text) => {
      result(cls, p('', text));
      say(text);
    };

    async function redeem(reward, btn, points) {
      if (busy || btn.disabled) return;
      busy = true;
      const name = rewardTitle(reward);
      // One key per click, reused when that click is retried.
      const key = retryKeys[reward.id] || (retryKeys[reward.id] = uuid());
      tell('lw-wait', fmt(T.redeeming, { reward: name }));
      res.focus(); // before disabling the button
      rw.querySelectorAll('button').forEach((b) => (b.disabled = true));
      let made = null;
      for (let i = 0; ; i++) {
        try {
          const ask = { reward_id: reward.id, idempotency_key: key };
          if (points) ask.points = points;
          made = (await api(proxy, '/redeem', JSON.stringify(ask))).redemption;
          delete retryKeys[reward.id];
          break;
        } catch (e) {
          const known = e.status >= 400 && e.status < 500;
          if (!known && i < 2) {
            await sleep(1000 * (i + 1));
            continue;
          }
          if (known) delete retryKeys[reward.id];
          tell('lw-bad', errText(e));
          break;
        }
      }
      busy = false;
      if (made) follow(made, name);
      else load(true);
    }

    // Poll every second, up to a minute, while pending.
    async function follow(red, name) {
      following++;
      load(true); // new balance
      const end = Date.now() + 60000;
      if (red.status === 'pending') tell('lw-wait', fmt(red.store_credit ? T.preparingCredit : T.preparing, { reward: name }));
      while (red.status === 'pending' && Date.now() < end) {
        await sleep(1000);
        try {
          red = (await api(proxy, '/redemptions/' + red.id)).redemption;
        } catch (e) {
          if (e.status === 401 || e.status === 404) break;
        }
      }
      if (red.status === 'issued' && red.store_credit) {
        // Store credit: no code to copy; the new balance instead.
        const sc = red.store_credit;
        const added = fmt(T.creditReady, { v: creditMoney(sc, sc.amount) });
        const now = sc.balance !== null && fmt(T.creditBalance, { v: creditMoney(sc, sc.balance) });
        result('lw-ok', p('lw-strong', name), p('', added), now && p('lw-big lw-credit', now), p('lw-small', T.creditAtCheckout));
        say(line(added, now));
      } else if (red.status === 'issued' && red.code) {
        result('lw-ok', p('lw-strong', name), codeBox(red.code, 'rc'),
          p('lw-small', (red.ends_at ? fmt(T.validUntil, { date: date(red.ends_at) }) + ' ' : '') + T.atCheckout));
        say(fmt(T.ready, { reward: name, code: red.code.split('').join(' ') }));
      } else if (red.status === 'failed') tell('lw-bad', fmt(T.failed, { reward: name }));
      else if (red.status === 'pending') tell('lw-wait', T.slow);
      else tell('', `${name}: ${T.status[red.status] || red.status}`);
      following--;
      load(true);
    }

    if (inline) load();
  }

  function start() {
    [['loyalty-page-root', true], ['loyalty-widget-root', false]].forEach(([id, inline]) => {
      const root = D.getElementById(id);
      if (root && !root.dataset.lwMounted) {
        root.dataset.lwMounted = '1';
        mount(root, inline);
      }
    });
  }
  if (D.readyState === 'loading') D.addEventListener('DOMContentLoaded', start);
  else start();
})();
