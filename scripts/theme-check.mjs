// Theme Check on the theme app extension's Liquid: prints every offence, exits 1 if any is an error or a warning.
// Run through `make theme-check` (npm ci first); @shopify/theme-check-node is a library, so this is its command line.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { themeCheckRun, Severity } from '@shopify/theme-check-node';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const extension = path.resolve(root, process.argv[2] ?? 'storefront_widget/extension');
const config = path.join(root, 'scripts', 'theme-check.yml'); // outside the extension: Shopify deploys that folder
const quiet = () => {}; // the docs manager logs its cache refreshes; the offences are what matters

const { offenses, theme } = await themeCheckRun(extension, config, quiet);
for (const offence of offenses) {
  const where = path.relative(root, fileURLToPath(offence.uri));
  const line = offence.start ? offence.start.line + 1 : 0;
  console.log(`${where}:${line}: ${Severity[offence.severity]} ${offence.check}: ${offence.message}`);
}
const failing = offenses.filter((offence) => offence.severity !== Severity.INFO);
console.log(`theme-check: ${theme.length} files, ${offenses.length} offences, ${failing.length} failing`);
process.exit(failing.length || theme.length === 0 ? 1 : 0);
