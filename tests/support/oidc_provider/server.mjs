// A real OpenID Connect provider (npm `oidc-provider`) for the identity tests.
//
// Everything test-specific comes from the Python fixture as JSON in OIDC_TEST_CONFIG:
//   { "port": 0, "jwks": {"keys": [private JWKs]}, "resources": {"<uri>": {"scope": "a b", "ttl": 300}},
//     "defaultResource": "<uri>", "clients": [{"client_id", "client_secret", "scope", "ttl"?, "claims"?}] }
// The first key signs. Access tokens are RFC 9068 JWTs whose `aud` is the resource indicator.
// Once listening it prints one line `{"issuer": "http://127.0.0.1:PORT"}` on stdout.
import http from 'node:http';

import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(process.env.OIDC_TEST_CONFIG);

const server = http.createServer();
// Listen first so a port of 0 can be resolved before the issuer (which contains it) is fixed.
await new Promise((resolve) => server.listen(config.port ?? 0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const clientsById = new Map(config.clients.map((c) => [c.client_id, c]));

const provider = new Provider(issuer, {
  jwks: config.jwks,
  clients: config.clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    scope: c.scope,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  scopes: [...new Set(Object.values(config.resources).flatMap((r) => r.scope.split(' ')))],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => config.defaultResource,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource, client) => {
        const rs = config.resources[resource];
        if (!rs) throw new errors.InvalidTarget();
        return {
          scope: rs.scope,
          audience: resource,
          accessTokenFormat: 'jwt',
          accessTokenTTL: clientsById.get(client.clientId)?.ttl ?? rs.ttl ?? 300,
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  // Keycloak-style role claims (realm_access / resource_access) for clients configured with them.
  extraTokenClaims: (ctx, token) => clientsById.get(token.clientId)?.claims,
});

provider.on('server_error', (ctx, err) => console.error('server_error', err));
server.on('request', provider.callback());

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

console.log(JSON.stringify({ issuer }));
