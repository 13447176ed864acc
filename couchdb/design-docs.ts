/**
 * What the blob database needs in CouchDB, applied idempotently at start-up
 * (src/store/setup.ts). The functions are JavaScript source run by CouchDB's
 * query server, hence strings.
 *
 * It has no `validate_doc_update`: CouchDB runs one for every document
 * written, in its JavaScript engine, and on CouchDB 3.5 that cut raw
 * `_bulk_docs` from 15,300 to 2,040 documents a second. Blobs are checked
 * where they come in (src/ingest), `_security` keeps every CouchDB user but
 * kpi-live's and server admins out (src/store/setup.ts), and setup removes
 * the guard an older kpi-live wrote here.
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
} as const;
