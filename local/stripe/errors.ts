/** A Stripe API error: rendered as `{"error":{code?, doc_url?, message, param?, type}}`. */
export class StripeApiError extends Error {
  readonly status: number;
  readonly type: string;
  readonly code: string | undefined;
  readonly param: string | undefined;

  constructor(
    status: number,
    type: string,
    message: string,
    extra: { code?: string; param?: string } = {},
  ) {
    super(message);
    this.status = status;
    this.type = type;
    this.code = extra.code;
    this.param = extra.param;
  }

  toBody(requestId: string): { error: Record<string, string> } {
    const error: Record<string, string> = {};
    if (this.code) {
      error.code = this.code;
      error.doc_url = `https://stripe.com/docs/error-codes/${this.code.replaceAll("_", "-")}`;
    }
    error.message = this.message;
    if (this.param) error.param = this.param;
    error.request_log_url = `https://dashboard.stripe.com/test/logs/${requestId}`;
    error.type = this.type;
    return { error };
  }
}

export function invalidRequest(
  message: string,
  extra: { code?: string; param?: string } = {},
  status = 400,
): StripeApiError {
  return new StripeApiError(status, "invalid_request_error", message, extra);
}

/** `kind` is Stripe's word for the object in the message: "customer", "checkout.session", ... */
export function noSuchObject(kind: string, id: string, param = "id", status = 404): StripeApiError {
  return invalidRequest(`No such ${kind}: '${id}'`, { code: "resource_missing", param }, status);
}

export function missingParam(param: string): StripeApiError {
  return invalidRequest(`Missing required param: ${param}.`, { code: "parameter_missing", param });
}

export function unknownParam(param: string): StripeApiError {
  return invalidRequest(`Received unknown parameter: ${param}`, {
    code: "parameter_unknown",
    param,
  });
}
