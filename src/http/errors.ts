/**
 * The one error handler of kpi-live, and the error shape every route shares.
 *
 * - A client's mistake (4xx) gets its message, and the field at fault when
 *   there is one, so the client can act on it.
 * - A dependency that is down, slow or refusing (store, full ingest queue)
 *   gets 503 with `Retry-After`: clients keep their data and retry.
 * - Anything else is a bug: 500 with a generic message; details go to the log
 *   only. Messages never carry secrets (store URLs are logged without
 *   credentials, tokens never).
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** A client error with a status, a message and optionally the field at fault. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly statusCode: number,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** JSON schema of every error answer; routes list it for each error status. */
export const errorResponseSchema = {
  type: 'object',
  required: ['success', 'statusCode', 'error', 'message'],
  properties: {
    success: { type: 'boolean', const: false },
    statusCode: { type: 'integer' },
    error: { type: 'string' },
    message: { type: 'string' },
    field: { type: 'string' },
  },
} as const;

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  408: 'Request Timeout',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export interface ErrorBody {
  success: false;
  statusCode: number;
  error: string;
  message: string;
  field?: string;
}

export function errorBody(statusCode: number, message: string, field?: string): ErrorBody {
  const body: ErrorBody = { success: false, statusCode, error: REASONS[statusCode] ?? 'Error', message };
  if (field !== undefined) body.field = field;
  return body;
}

/** Sends a 503 that tells the client when to come back. */
export function sendUnavailable(reply: FastifyReply, retryAfterSeconds: number, message: string): FastifyReply {
  return reply.code(503).header('retry-after', String(retryAfterSeconds)).send(errorBody(503, message));
}

/** Installs the error and not-found handlers on the root instance. */
export function installErrorHandling(app: FastifyInstance, retryAfterSeconds: number): void {
  app.setErrorHandler((err: FastifyError & { unavailable?: boolean; field?: string }, request: FastifyRequest, reply: FastifyReply) => {
    if (err.unavailable) {
      request.log.warn({ err: { type: err.name, message: err.message } }, 'dependency unavailable: answering 503');
      return sendUnavailable(reply, retryAfterSeconds, 'the store is unavailable; retry later');
    }
    const status = err.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      let field = err.field;
      let message = err.message;
      if (err.validation && err.validation[0]) {
        const v = err.validation[0];
        const base = (err.validationContext ?? '').replace(/^querystring$/, 'query');
        const missing = (v.params as { missingProperty?: string }).missingProperty;
        const path = [base, ...v.instancePath.split('/').filter(Boolean), ...(missing ? [missing] : [])].join('.');
        field = path;
        message = `${path} ${missing ? 'is required' : (v.message ?? 'is invalid')}`;
      }
      if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') message = 'request body is too large';
      if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
        message = 'content type must be application/json or application/x-www-form-urlencoded';
        field = 'content-type';
      }
      request.log.info({ statusCode: status, field, reason: message }, 'client error');
      return reply.code(status).send(errorBody(status, message, field));
    }
    if (status === 503) return sendUnavailable(reply, retryAfterSeconds, err.message);
    request.log.error({ err }, 'unexpected error');
    return reply.code(500).send(errorBody(500, 'internal error; it has been logged'));
  });

  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(errorBody(404, `no route for ${request.method} ${request.url.split('?')[0]}`));
  });
}
