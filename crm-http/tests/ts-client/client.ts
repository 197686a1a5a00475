// What a new user of crm-rs writes first, against a client generated from the spec
// (openapi-typescript + openapi-fetch). It is only type-checked (`tsc --strict
// --noEmit`, by tests/it/ts_client.rs), never run: every field read below must be
// typed in the spec, or this does not compile.
import createClient from "openapi-fetch";
import type { components, operations, paths } from "./api";

type Contact = components["schemas"]["Contact"];
type Role = components["schemas"]["Role"];

// Operations are found by their stable ids as well as by path.
type ConvertedLead =
  operations["convertLead"]["responses"][200]["content"]["application/json; charset=utf-8"]["data"];

export async function firstSteps(baseUrl: string, leadId: string): Promise<string[]> {
  const client = createClient<paths>({ baseUrl });
  const seen: string[] = [];

  // Sign in: the tokens and the user are typed.
  const login = await client.POST("/auth/login", {
    body: { email: "admin@example.com", password: "a-long-password" },
  });
  if (!login.data) {
    throw new Error(login.error?.error.message ?? "sign-in failed");
  }
  const token: string = login.data.data.access_token;
  const expiresIn: number = login.data.data.expires_in;
  const refreshExpiresAt: string = login.data.data.refresh_expires_at;
  const email: string = login.data.data.user.email;
  seen.push(`${email} until ${refreshExpiresAt} (${expiresIn}s)`);
  const headers = { Authorization: `Bearer ${token}` };

  // Who am I: user, role, tenant, and the session or API key in use.
  const me = await client.GET("/auth/me", { headers });
  if (!me.data) {
    throw new Error(me.error?.error.code);
  }
  const role: Role = me.data.data.role;
  const tenant: string = me.data.data.tenant_id;
  const session: string | null | undefined = me.data.data.session_id;
  const firstName: string = me.data.data.user.first_name;
  seen.push(`${firstName} is ${role} in ${tenant} (${session ?? "API key"})`);

  // A filtered page of contacts, and where the next one starts.
  const page = await client.GET("/contacts", {
    headers,
    params: { query: { limit: 20, search: "ada", created_from: "2026-01-01" } },
  });
  if (!page.data) {
    throw new Error(page.error?.error.message);
  }
  const contacts: Contact[] = page.data.data;
  const next: string | undefined = page.data.pagination.next_cursor;
  const first = contacts[0];
  if (first === undefined) {
    return seen;
  }
  seen.push(`${contacts.length} contacts, next page: ${next ?? "none"}`);

  // One contact, and its version for the next change.
  const one = await client.GET("/contacts/{id}", { headers, params: { path: { id: first.meta.id } } });
  if (!one.data) {
    throw new Error(one.error?.error.message);
  }
  const lastName: string = one.data.data.last_name;
  const companyId: string | null | undefined = one.data.data.company_id;
  const version: number = one.data.data.meta.version;
  const etag: string | null = one.response.headers.get("ETag");
  seen.push(`${lastName} at ${companyId ?? "no company"}, version ${version} (${etag})`);

  // Convert a lead: the contact, and the company and deal it made.
  const converted = await client.POST("/leads/{id}/convert", {
    headers,
    params: { path: { id: leadId } },
    body: {
      company: { mode: "new", value: null },
      deal: { title: "Support", amount: "5000.00", currency: "EUR" },
    },
  });
  if (!converted.data) {
    throw new Error(converted.error?.error.details.map((d) => d.field).join(", "));
  }
  const result: ConvertedLead = converted.data.data;
  const contactId: string = result.contact.meta.id;
  const leadStatus: string = result.lead.status;
  const companyName: string | undefined = result.company?.name;
  const dealAmount: string | undefined = result.deal?.amount;
  seen.push(`${contactId} (${leadStatus}), ${companyName ?? "-"}, ${dealAmount ?? "-"}`);

  return seen;
}
