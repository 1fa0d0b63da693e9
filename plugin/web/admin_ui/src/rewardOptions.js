/** The catalogue rewards a milestone or a referral may grant, as a select's options (cash back is priced by the shopper). */
import {t} from './i18n.js';

export function rewardOptions(rewards, current) {
  const options = [{value: '', label: t('grants.none')}, ...(rewards || [])
    .filter((reward) => reward.kind !== 'cash_back')
    .map((reward) => ({value: reward.id, label: `${reward.title} (${reward.id})`}))];
  // A saved reward since removed from the catalogue still shows, so the merchant sees what the API will refuse.
  if (current && !options.some((option) => option.value === current)) options.push({value: current, label: current});
  return options;
}
