/** Form text to API values: what is not a whole number goes as typed, so the API's own message says why. */

export const whole = (value) => (/^\s*-?\d+\s*$/.test(String(value)) ? Number(value) : value);
export const optional = (value) => (value === null || String(value).trim() === '' ? null : String(value).trim());
