// The tenants: one database per region, and how a request's host picks one.
export const TENANTS = {
  us: { database: 'tenant_us', url: () => process.env.TENANT_US_URL, hosts: ['us.example.com', 'app.example.com'] },
  eu: { database: 'tenant_eu', url: () => process.env.TENANT_EU_URL, hosts: ['eu.example.com'] },
};

export function tenantForHost(host) {
  const name = Object.keys(TENANTS).find((t) => TENANTS[t].hosts.includes(host));
  if (!name) throw new Error(`no tenant serves host ${host}`);
  return name;
}
