/** The admin's entry point: Polaris' styles and the app, mounted into #root. */
import {createRoot} from 'react-dom/client';
import '@shopify/polaris/build/esm/styles.css';
import '@shopify/polaris-viz/build/esm/styles.css';
import {App} from './shell/App.jsx';

createRoot(document.getElementById('root')).render(<App />);
