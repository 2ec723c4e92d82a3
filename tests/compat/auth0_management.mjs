// node-auth0's ManagementClient as its README shows (domain, clientId,
// clientSecret: it fetches its own token over HTTPS), driving one round
// trip. Prints one JSON object for the pytest row: what each step returned,
// or the step that failed with its status and Auth0 error body.
import { AuthenticationClient, ManagementClient } from 'auth0';

const args = JSON.parse(process.argv[2]);
const { domain, clientId, clientSecret } = args;
const management = new ManagementClient({ domain, clientId, clientSecret });
const steps = {};
let step = 'start';

async function all(page) {
  const items = [];
  for await (const item of await page) items.push(item);
  return items;
}

async function status(call) {
  try {
    await call();
    return { status: 200 };
  } catch (error) {
    return { status: error.statusCode ?? null, errorCode: error.body?.errorCode ?? null };
  }
}

async function claims(id, secret, audience) {
  const auth = new AuthenticationClient({ domain, clientId: id, clientSecret: secret });
  const { data } = await auth.oauth.clientCredentialsGrant({ audience });
  return JSON.parse(Buffer.from(data.access_token.split('.')[1], 'base64url').toString());
}

async function classic() {
  const { audience, hookScript, hookScriptV2, foreignClientId } = args;
  step = 'resourceServers.create';
  const rs = await management.resourceServers.create({
    name: 'Orders',
    identifier: audience,
    scopes: [{ value: 'read:data', description: 'Read' }],
    token_lifetime: 3600,
  });
  steps.created_rs = rs;
  step = 'resourceServers.update';
  steps.updated_rs = await management.resourceServers.update(rs.id, {
    name: 'Orders v2',
    scopes: [
      { value: 'read:data', description: 'Read' },
      { value: 'write:data', description: 'Write' },
    ],
  });
  step = 'resourceServers.get';
  steps.got_rs = await management.resourceServers.get(rs.id);
  step = 'resourceServers.list';
  steps.listed_rs = await all(management.resourceServers.list({ per_page: 1 }));
  step = 'resourceServers.create again';
  steps.duplicate_rs = await status(() =>
    management.resourceServers.create({ name: 'Again', identifier: audience }),
  );
  step = 'resourceServers.delete system';
  const system = steps.listed_rs.find((item) => item.is_system);
  steps.delete_system_rs = await status(() => management.resourceServers.delete(system.id));

  step = 'clients.create';
  const client = await management.clients.create({
    name: 'Worker',
    app_type: 'non_interactive',
    grant_types: ['client_credentials'],
    client_metadata: { plan: 'gold' },
  });
  steps.created_client = { ...client, client_secret: Boolean(client.client_secret) };
  step = 'clients.update';
  steps.updated_client = await management.clients.update(client.client_id, {
    client_metadata: { plan: 'silver' },
  });
  step = 'clients.get';
  steps.got_client = await management.clients.get(client.client_id);
  step = 'clients.rotateSecret';
  const rotated = await management.clients.rotateSecret(client.client_id);
  steps.rotated = rotated.client_secret !== client.client_secret;
  step = 'clients.get another tenant';
  steps.foreign_client = await status(() => management.clients.get(foreignClientId));

  step = 'clientGrants.create';
  const grant = await management.clientGrants.create({
    client_id: client.client_id,
    audience,
    scope: ['read:data'],
  });
  steps.created_grant = grant;
  step = 'clientGrants.update';
  steps.updated_grant = await management.clientGrants.update(grant.id, {
    scope: ['read:data', 'write:data'],
  });
  step = 'clientGrants.get';
  steps.got_grant = await management.clientGrants.get(grant.id);
  step = 'clientGrants.list';
  steps.listed_grants = await all(management.clientGrants.list({ take: 1 }));

  step = 'hooks.create';
  const hook = await management.hooks.create({
    name: 'plan-claim',
    script: hookScript,
    triggerId: 'credentials-exchange',
    enabled: true,
  });
  steps.created_hook = hook;
  step = 'hooks.secrets.create';
  await management.hooks.secrets.create(hook.id, { PREFIX: 'first' });
  step = 'hooks.secrets.update';
  await management.hooks.secrets.update(hook.id, { PREFIX: 'plan' });
  step = 'hooks.secrets.get';
  steps.hook_secrets = await management.hooks.secrets.get(hook.id);
  step = 'token';
  steps.claims_v1 = await claims(client.client_id, rotated.client_secret, audience);
  step = 'hooks.update';
  steps.updated_hook = await management.hooks.update(hook.id, { script: hookScriptV2 });
  step = 'hooks.get';
  steps.got_hook = await management.hooks.get(hook.id);
  step = 'hooks.list';
  steps.listed_hooks = await all(management.hooks.list({ per_page: 1 }));
  step = 'token after update';
  steps.claims_v2 = await claims(client.client_id, rotated.client_secret, audience);

  step = 'hooks.secrets.delete';
  await management.hooks.secrets.delete(hook.id, ['PREFIX']);
  step = 'deletes';
  await management.hooks.delete(hook.id);
  await management.clientGrants.delete(grant.id);
  await management.clients.delete(client.client_id);
  await management.resourceServers.delete(rs.id);
  steps.after_delete = {
    hook: await status(() => management.hooks.get(hook.id)),
    grant: await status(() => management.clientGrants.get(grant.id)),
    client: await status(() => management.clients.get(client.client_id)),
    rs: await status(() => management.resourceServers.get(rs.id)),
  };
}

async function actions() {
  // Auth0's Actions round trip: create, wait for built, deploy, bind, update,
  // deploy again, roll back, test, force-delete.
  const { actionCode, actionCodeV2 } = args;
  step = 'actions.create';
  const action = await management.actions.create({
    name: 'plan-action',
    code: actionCode,
    runtime: 'node22',
    supported_triggers: [{ id: 'credentials-exchange', version: 'v2' }],
  });
  steps.created_action = action;
  step = 'actions.get until built';
  for (let tries = 0; tries < 60; tries++) {
    const current = await management.actions.get(action.id);
    if (current.status !== 'pending') {
      steps.built = current.status;
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  step = 'actions.deploy';
  steps.deployed = await management.actions.deploy(action.id);
  step = 'actions.triggers.bindings.updateMany';
  steps.bindings = await management.actions.triggers.bindings.updateMany('credentials-exchange', {
    bindings: [{ ref: { type: 'action_id', value: action.id }, display_name: 'plan' }],
  });
  step = 'actions.update';
  steps.updated_action = await management.actions.update(action.id, { code: actionCodeV2 });
  step = 'actions.deploy again';
  steps.deployed_again = await management.actions.deploy(action.id);
  step = 'actions.versions.list';
  const versions = await all(management.actions.versions.list(action.id));
  steps.versions = versions.map((version) => version.number);
  step = 'actions.versions.deploy';
  const first = versions.find((version) => version.number === 1);
  steps.rolled_back = await management.actions.versions.deploy(action.id, first.id);
  step = 'actions.test';
  steps.tested = await management.actions.test(action.id, { payload: {} });
  step = 'actions.delete bound';
  steps.delete_bound = await status(() => management.actions.delete(action.id));
  step = 'actions.delete force';
  await management.actions.delete(action.id, { force: true });
  steps.after_delete = await status(() => management.actions.get(action.id));
}

try {
  await (args.run === 'actions' ? actions() : classic());
  console.log(JSON.stringify(steps));
} catch (error) {
  console.log(
    JSON.stringify({
      failed: step,
      status: error.statusCode ?? null,
      body: error.body ?? null,
      message: error.message,
      steps,
    }),
  );
}
