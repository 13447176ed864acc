/**
 * What the blob database needs in CouchDB, applied idempotently at start-up
 * (src/store/setup.ts). The functions are JavaScript source run by CouchDB's
 * query server, hence strings.
 */

/** Design document of the blob database. */
export const blobsDesignDoc = {
  _id: '_design/kpi-live',
  language: 'javascript',
  views: {
    // Counting blobs in a time range. Reading blobs needs no view: document
    // ids sort by time (src/store/blob-ids.ts), so `_all_docs` ranges do it.
    by_time: {
      map: "function (doc) { if (typeof doc.timestamp === 'number') { emit(doc.timestamp, null); } }",
      reduce: '_count',
    },
  },
  // Defence in depth against other writers holding credentials: a blob must
  // keep the shape kpi-live's ingest gives it (10-minute timestamp, an id
  // that the aggregate can read its run and counter from, events).
  validate_doc_update: [
    'function (newDoc, oldDoc, userCtx) {',
    "  if (newDoc._deleted || newDoc._id.indexOf('_design/') === 0) { return; }",
    "  if (typeof newDoc.timestamp !== 'number' || newDoc.timestamp % 600000 !== 0) {",
    "    throw({ forbidden: 'timestamp must be a number of ms rounded to 10 minutes' });",
    '  }',
    "  if (newDoc._id.indexOf(new Date(newDoc.timestamp).toISOString() + '_') !== 0 || !/_[0-9a-v]{10}-[0-9a-z]{1,11}$/.test(newDoc._id)) {",
    "    throw({ forbidden: 'a blob id is <ISO bucket time>_<run>-<counter> (src/store/blob-ids.ts)' });",
    '  }',
    '  if (!Array.isArray(newDoc.event_stream)) {',
    "    throw({ forbidden: 'event_stream must be an array' });",
    '  }',
    '}',
  ].join('\n'),
} as const;
