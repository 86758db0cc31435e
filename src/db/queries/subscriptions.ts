import { and, asc, desc, eq, inArray, isNull, or, type SQL, sql } from "drizzle-orm";
import type { Database } from "../client";
import {
  PRO_STATUSES,
  processedWebhookEvents,
  type SubscriptionRow,
  subscriptions,
  TERMINAL_STATUSES,
  type Tier,
  users,
} from "../schema";

/** A subscription's state as read from Stripe, with the version that orders reads. */
export interface SubscriptionState {
  id: string;
  customerId: string;
  status: string;
  priceId: string | null;
  currentPeriodEnd: Date | null;
  cancelAtPeriodEnd: boolean;
  /** Unix ms of the read; a smaller version never overwrites a larger one. */
  version: number;
}

export interface BillingAccount {
  user: { id: string; tier: Tier; stripeCustomerId: string | null } | null;
  /**
   * The subscription that decides the user's status: a Pro-granting one first, one still renewing
   * before one set to end at period end, else the latest.
   */
  subscription: SubscriptionRow | null;
}

const list = (values: readonly string[]): SQL =>
  sql.join(
    values.map((v) => sql`${v}`),
    sql`, `,
  );

/** Pro statuses on the Pro price: the one combination that grants Pro. */
const grantsPro = (proPriceId: string): SQL =>
  sql`(${subscriptions.status} in (${list(PRO_STATUSES)}) and ${subscriptions.priceId} = ${proPriceId})`;

/**
 * The user's tier and customer id, and their current subscription: one round trip. With the
 * Pro price, a subscription that grants Pro comes before one on another price.
 */
export async function findBillingAccount(
  db: Database,
  userId: string,
  proPriceId?: string,
): Promise<BillingAccount> {
  const [userRows, subRows] = await db.batch([
    db
      .select({ id: users.id, tier: users.tier, stripeCustomerId: users.stripeCustomerId })
      .from(users)
      .where(eq(users.id, userId))
      .limit(1),
    db
      .select()
      .from(subscriptions)
      .where(eq(subscriptions.userId, userId))
      .orderBy(
        ...(proPriceId ? [desc(grantsPro(proPriceId))] : []),
        desc(sql`${subscriptions.status} in (${list(PRO_STATUSES)})`),
        desc(sql`${subscriptions.status} not in (${list(TERMINAL_STATUSES)})`),
        // One that still renews before one already set to end: otherwise a user who paid twice
        // is told "ends at period end" while still billed, and cannot cancel the second one.
        asc(subscriptions.cancelAtPeriodEnd),
        desc(subscriptions.updatedAt),
      )
      .limit(1),
  ]);
  return { user: userRows[0] ?? null, subscription: subRows[0] ?? null };
}

/**
 * Stores the user's Stripe customer id while the stored one is still `replacing` (none, for a
 * first customer); answers the stored id, so two concurrent checkouts agree on one customer.
 */
export async function setStripeCustomerId(
  db: Database,
  userId: string,
  customerId: string,
  replacing: string | null,
  now: Date,
): Promise<string | null> {
  const updated = await db
    .update(users)
    .set({ stripeCustomerId: customerId, updatedAt: now })
    .where(
      and(
        eq(users.id, userId),
        replacing === null ? isNull(users.stripeCustomerId) : eq(users.stripeCustomerId, replacing),
      ),
    )
    .returning({ customerId: users.stripeCustomerId });
  if (updated[0]) return updated[0].customerId;
  const [row] = await db
    .select({ customerId: users.stripeCustomerId })
    .from(users)
    .where(eq(users.id, userId));
  return row?.customerId ?? null;
}

/** Users an event may belong to: by id (metadata / client_reference_id) or by customer id. */
export async function findBillingUsers(
  db: Database,
  hints: { userIds: string[]; customerId: string | null },
): Promise<{ id: string; stripeCustomerId: string | null }[]> {
  const conditions: SQL[] = [];
  if (hints.userIds.length > 0) conditions.push(inArray(users.id, hints.userIds));
  if (hints.customerId) conditions.push(eq(users.stripeCustomerId, hints.customerId));
  if (conditions.length === 0) return [];
  return db
    .select({ id: users.id, stripeCustomerId: users.stripeCustomerId })
    .from(users)
    .where(or(...conditions));
}

export interface ApplyResult {
  /** False when the event was already recorded or a newer state is already stored. */
  applied: boolean;
  tier: Tier | null;
}

/**
 * Writes a subscription state and the user's derived tier in one transaction (`db.batch`): Pro
 * iff one of the user's subscriptions is in a Pro status on `proPriceId`.
 * With `event`, the event id is recorded in the same statement and the state is written only
 * when the id is new, so parallel redeliveries apply once. The user row is locked first, so
 * changes to two subscriptions of one user cannot compute the tier from stale snapshots.
 */
export async function applySubscriptionState(
  db: Database,
  input: {
    userId: string;
    state: SubscriptionState;
    proPriceId: string;
    event?: { id: string; type: string };
  },
): Promise<ApplyResult> {
  const { userId, state, event, proPriceId } = input;
  const row = sql`${state.id}, ${userId}, ${state.customerId}, ${state.status}, ${state.priceId},
    ${state.currentPeriodEnd?.toISOString() ?? null}::timestamptz,
    ${String(state.cancelAtPeriodEnd)}::boolean, ${String(state.version)}::bigint, now()`;
  const insert = sql`insert into ${subscriptions} as s (id, user_id, customer_id, status, price_id,
    current_period_end, cancel_at_period_end, state_version, updated_at)`;
  const write = event
    ? sql`with event as (
        insert into ${processedWebhookEvents} (id, source, type) values (${event.id}, 'stripe', ${event.type})
        on conflict (id) do nothing returning id
      ) ${insert} select ${row} from event`
    : sql`${insert} values (${row})`;
  const terminal = list(TERMINAL_STATUSES);

  const [, written, tierRows] = await db.batch([
    db.select({ id: users.id }).from(users).where(eq(users.id, userId)).for("update"),
    db.execute<{ id: string }>(sql`${write}
      on conflict (id) do update set
        customer_id = excluded.customer_id,
        status = excluded.status,
        price_id = excluded.price_id,
        current_period_end = excluded.current_period_end,
        cancel_at_period_end = excluded.cancel_at_period_end,
        state_version = excluded.state_version,
        updated_at = now()
      where s.status not in (${terminal})
        and (excluded.state_version > s.state_version or excluded.status in (${terminal}))
      returning s.id`),
    db.execute<{ tier: Tier }>(sql`update ${users} set
        tier = case when exists (
          select 1 from ${subscriptions} where user_id = ${userId}
            and status in (${list(PRO_STATUSES)}) and price_id = ${proPriceId}
        ) then 'pro' else 'basic' end,
        stripe_customer_id = case
          when ${users.stripeCustomerId} is null and not exists (
            select 1 from ${users} other where other.stripe_customer_id = ${state.customerId}
          ) then ${state.customerId}
          else ${users.stripeCustomerId} end,
        updated_at = now()
      where id = ${userId}
      returning tier`),
  ]);
  return { applied: written.rows.length > 0, tier: tierRows.rows[0]?.tier ?? null };
}
