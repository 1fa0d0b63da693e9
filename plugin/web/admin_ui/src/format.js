/** Numbers, points and dates in the staff's language. */
import {config} from './config.js';

const numbers = new Intl.NumberFormat(config.locale);
const dates = new Intl.DateTimeFormat(config.locale, {dateStyle: 'short', timeStyle: 'short'});

export const formatNumber = (n) => numbers.format(n);
export const formatSigned = (n) => (n > 0 ? `+${numbers.format(n)}` : numbers.format(n));
export const formatDate = (iso) => dates.format(new Date(iso));
