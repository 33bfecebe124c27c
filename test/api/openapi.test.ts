import SwaggerParser from '@apidevtools/swagger-parser';
import { expect } from 'chai';
import { apiRoutes } from '../../src/api/routes/index.ts';
import { call, openApiChecker } from '../helpers/api.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';

type Operation = {
  operationId: string;
  security: Record<string, string[]>[];
  'x-permission'?: string;
  responses: Record<string, { content?: Record<string, unknown> }>;
};
type Document = {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown>; securitySchemes: Record<string, { type: string; openIdConnectUrl: string }> };
};

describe('resource API: OpenAPI document', function () {
  this.timeout(60_000);
  let servers: TestServers;
  let document: Document;

  before(async function () {
    servers = await startTestServers();
    const res = await call(servers, 'GET', '/openapi.json');
    expect(res.status).to.equal(200);
    expect(res.headers.get('Content-Type')).to.match(/^application\/json/);
    document = res.body as Document;
  });
  after(async function () {
    await servers.stop();
  });

  it('is a valid OpenAPI 3.1 document', async function () {
    expect(document.openapi).to.equal('3.1.0');
    await SwaggerParser.validate(structuredClone(document) as never);
  });

  it('documents every registered route, with its scopes and permission, and nothing else', function () {
    const routes = apiRoutes(servers.deps);
    for (const route of routes) {
      const operation = document.paths[route.path]?.[route.method];
      expect(operation, `${route.method} ${route.path}`).to.not.equal(undefined);
      expect(operation?.operationId).to.equal(route.operationId);
      expect(operation?.security).to.deep.equal([{ oidc: [...route.scopes] }]);
      expect(operation?.['x-permission']).to.equal(route.permission);
    }
    const documented = Object.entries(document.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`));
    expect(documented.sort()).to.deep.equal([...routes.map((r) => `${r.method} ${r.path}`), 'get /healthz'].sort());
  });

  it('names the issuer discovery document as the OpenID Connect security scheme', async function () {
    const scheme = document.components.securitySchemes.oidc;
    expect(scheme).to.deep.equal({ type: 'openIdConnect', openIdConnectUrl: `${servers.issuer}/.well-known/openid-configuration` });
    const discovery = await fetch(scheme!.openIdConnectUrl);
    expect(discovery.status).to.equal(200);
  });

  it('describes every error as an RFC 9457 problem', function () {
    expect(document.components.schemas).to.have.property('Problem');
    for (const [path, operations] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        for (const [status, response] of Object.entries(operation.responses)) {
          if (Number(status) >= 400)
            expect(Object.keys(response.content ?? {}), `${method} ${path} ${status}`).to.deep.equal(['application/problem+json']);
        }
      }
    }
  });

  it('is public, and the health probe matches it', async function () {
    const conforms = await openApiChecker(servers);
    conforms('GET', '/healthz', await call(servers, 'GET', '/healthz'));
    const unknown = await call(servers, 'GET', '/v2/nothing');
    expect(unknown.status).to.equal(404);
  });
});
