// Every measured endpoint, in the order of the report.
import type { Harness } from "../harness.ts";
import { authCases } from "./auth.ts";
import { billingCases } from "./billing.ts";
import type { Case } from "./case.ts";
import { chatroomsCases } from "./chatrooms.ts";
import { messagesCases } from "./messages.ts";
import { systemCases } from "./system.ts";
import { usersCases } from "./users.ts";
import { webhooksCases } from "./webhooks.ts";

export type { Case } from "./case.ts";

export function allCases(h: Harness): Case[] {
  return [
    ...systemCases(h),
    ...authCases(h),
    ...usersCases(h),
    ...chatroomsCases(h),
    ...messagesCases(h),
    ...webhooksCases(h),
    ...billingCases(h),
  ];
}
