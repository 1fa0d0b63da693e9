/** The navigation list: every page of the admin, in menu order. A new capability adds its module here. */
import {home} from './Home.jsx';
import {programme} from './Programme.jsx';
import {tiers} from './Tiers.jsx';
import {members} from './Members.jsx';
import {activity} from './Activity.jsx';
import {reports} from './Reports.jsx';
import {settings} from './Settings.jsx';
import {supportKeys} from './SupportKeys.jsx';
import {parked} from './Parked.jsx';
import {referrals} from './Referrals.jsx';
import {milestones} from './Milestones.jsx';
import {importPage} from './Import.jsx';
import {events} from './Events.jsx';
import {NotFound} from './NotFound.jsx';

export const PAGES = [
  home, programme, tiers, milestones, members, activity, referrals, reports, settings, events, importPage, supportKeys, parked,
];

/** The component for a path, and the parameters its route captured. */
export function resolve(path) {
  for (const page of PAGES) {
    for (const route of page.routes) {
      const match = route.pattern.exec(path);
      if (match) return {Component: route.Component, params: match.groups || {}};
    }
  }
  return {Component: NotFound, params: {}};
}
