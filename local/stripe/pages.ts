import type { Hono } from "hono";
import { payCheckoutSession } from "./checkout.ts";
import { StripeApiError } from "./errors.ts";
import { formatAmount, type Subscription } from "./objects.ts";
import { AUTOMATIC, type StripeStore } from "./store.ts";
import { updateSubscription } from "./subscriptions.ts";

function escapeHtml(value: string): string {
  return value
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

function formatDate(unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toISOString().slice(0, 10);
}

function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
  body { font-family: system-ui, sans-serif; background: #f6f9fc; color: #1a1f36; margin: 0; }
  main { max-width: 28rem; margin: 4rem auto; background: #fff; padding: 2rem; border-radius: 8px;
         box-shadow: 0 2px 8px rgba(0,0,0,.08); }
  .test { background: #ffde92; color: #5d4200; font-size: .75rem; padding: .15rem .5rem; border-radius: 4px; }
  .amount { font-size: 2rem; font-weight: 600; margin: .5rem 0 1.5rem; }
  button { background: #635bff; color: #fff; border: 0; border-radius: 6px; padding: .75rem 1.5rem;
           font-size: 1rem; cursor: pointer; width: 100%; }
  button.secondary { background: #fff; color: #635bff; border: 1px solid #635bff; }
  a { color: #635bff; }
  ul { padding-left: 1.2rem; }
  li { margin-bottom: 1rem; }
</style>
</head>
<body><main>
<p><span class="test">TEST MODE · local Stripe</span></p>
${body}
</main></body>
</html>`;
}

function message(title: string, text: string): string {
  return layout(title, `<h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p>`);
}

function describeSubscription(sub: Subscription): string {
  const item = sub.items.data[0];
  const plan = item ? `${formatAmount(item.price.unit_amount, item.price.currency)} / month` : "";
  if (sub.status === "canceled") return `Canceled ${formatDate(sub.ended_at ?? sub.created)}`;
  const end = item ? formatDate(item.current_period_end) : "";
  const when = sub.cancel_at_period_end ? `Cancels ${end}` : `Renews ${end}`;
  return `${plan} · ${sub.status} · ${when}`;
}

/** Hosted pages: Checkout (with a Pay button), the customer portal and invoices. */
export function mountPages(app: Hono, store: StripeStore): void {
  app.get("/stripe/checkout/:id", (c) => {
    const session = store.find("checkout.session", c.req.param("id"));
    if (!session) return c.html(message("Not found", "No such Checkout Session."), 404);
    if (session.status === "expired") {
      return c.html(message("Session expired", "This Checkout Session has expired."), 410);
    }
    if (session.status === "complete") {
      return c.html(message("Already paid", "This Checkout Session is already complete."));
    }
    const lines = store
      .checkoutLineItems(session.id)
      .map(
        (l) =>
          `<p>${escapeHtml(l.description)} × ${l.quantity} · ${formatAmount(l.price.unit_amount, l.currency)} per month</p>`,
      )
      .join("");
    const customer = session.customer ? store.find("customer", session.customer) : undefined;
    const email = customer?.email ?? session.customer_email;
    const cancel = session.cancel_url
      ? `<p><a href="${escapeHtml(session.cancel_url)}">← Back</a></p>`
      : "";
    const body = `${cancel}
<h1>Subscribe</h1>
${lines}
<div class="amount" data-testid="amount">${formatAmount(session.amount_total, session.currency)} <small>per month</small></div>
${email ? `<p>Email: ${escapeHtml(email)}</p>` : ""}
<p>Card: 4242 4242 4242 4242 (test)</p>
<form method="post" action="/stripe/checkout/${escapeHtml(session.id)}">
  <button type="submit">Pay</button>
</form>`;
    return c.html(layout("Checkout", body));
  });

  app.post("/stripe/checkout/:id", (c) => {
    const id = c.req.param("id");
    const session = store.find("checkout.session", id);
    if (!session) return c.html(message("Not found", "No such Checkout Session."), 404);
    try {
      payCheckoutSession(store, id);
    } catch (err) {
      if (err instanceof StripeApiError) return c.html(message("Cannot pay", err.message), 410);
      throw err;
    }
    if (!session.success_url) {
      return c.html(message("Thanks for subscribing", "Your payment was successful."));
    }
    return c.redirect(session.success_url.replaceAll("{CHECKOUT_SESSION_ID}", id), 303);
  });

  app.get("/stripe/portal/:id", (c) => {
    const portal = store.find("billing_portal.session", c.req.param("id"));
    if (!portal) return c.html(message("Not found", "No such portal session."), 404);
    const customer = store.find("customer", portal.customer);
    const subscriptions = store.all("subscription").filter((s) => s.customer === portal.customer);
    const items = subscriptions
      .map((s) => {
        const action =
          s.status === "canceled"
            ? ""
            : s.cancel_at_period_end
              ? `<form method="post" action="/stripe/portal/${portal.id}/subscriptions/${s.id}/renew"><button type="submit">Renew plan</button></form>`
              : `<form method="post" action="/stripe/portal/${portal.id}/subscriptions/${s.id}/cancel"><button class="secondary" type="submit">Cancel plan</button></form>`;
        return `<li data-subscription="${s.id}">${escapeHtml(describeSubscription(s))}${action}</li>`;
      })
      .join("");
    const back = portal.return_url
      ? `<p><a href="${escapeHtml(portal.return_url)}">← Return</a></p>`
      : "";
    const body = `${back}
<h1>Billing</h1>
<p>${escapeHtml(customer?.email ?? portal.customer)}</p>
<h2>Subscriptions</h2>
${items ? `<ul>${items}</ul>` : "<p>No subscriptions.</p>"}`;
    return c.html(layout("Billing portal", body));
  });

  app.post("/stripe/portal/:id/subscriptions/:sub/:action{cancel|renew}", (c) => {
    const portal = store.find("billing_portal.session", c.req.param("id"));
    const sub = store.find("subscription", c.req.param("sub"));
    if (!portal || !sub || sub.customer !== portal.customer) {
      return c.html(message("Not found", "No such subscription."), 404);
    }
    // The portal's default cancellation is at the end of the period.
    const cancel = c.req.param("action") === "cancel" ? "true" : "false";
    updateSubscription(store, sub.id, { cancel_at_period_end: cancel }, AUTOMATIC);
    return c.redirect(`/stripe/portal/${portal.id}`, 303);
  });

  app.get("/stripe/invoice/:id", (c) => {
    const invoice = store.find("invoice", c.req.param("id"));
    if (!invoice) return c.html(message("Not found", "No such invoice."), 404);
    const lines = invoice.lines.data
      .map(
        (l) =>
          `<li>${escapeHtml(l.description)} · ${formatAmount(l.amount, l.currency)} (${formatDate(l.period.start)} – ${formatDate(l.period.end)})</li>`,
      )
      .join("");
    const body = `<h1>Invoice ${escapeHtml(invoice.number)}</h1>
<p>Status: ${invoice.status}</p>
<div class="amount">${formatAmount(invoice.total, invoice.currency)}</div>
<ul>${lines}</ul>`;
    return c.html(layout(`Invoice ${invoice.number}`, body));
  });
}
