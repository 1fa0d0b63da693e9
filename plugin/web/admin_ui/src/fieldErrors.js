/** Per-field messages read from the API's error "fields" map (marshmallow's nesting), never guessed from text. */

/** The messages at `path` (e.g. ['rewards', 0, 'amount']); for a nested object, its own "_schema" messages. */
export function fieldError(fields, path) {
  let node = fields;
  for (const key of path) {
    if (node == null || typeof node !== 'object' || Array.isArray(node)) return undefined;
    node = node[String(key)];
  }
  if (Array.isArray(node)) return node.filter((m) => typeof m === 'string').join(' ') || undefined;
  if (node && typeof node === 'object' && Array.isArray(node._schema)) return node._schema.join(' ');
  return undefined;
}

/** A function of a path, bound to one error's fields: the pages call `errorAt('points')`. */
export function errorsOf(error) {
  const fields = error && error.fields;
  return (...path) => (fields ? fieldError(fields, path) : undefined);
}
