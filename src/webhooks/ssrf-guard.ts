/**
 * SSRF guard for webhook targets: classifies IP addresses and refuses the
 * classes a policy does not allow. Registration resolves the URL's host and
 * checks every address; delivery checks every address DNS returns again,
 * inside the socket's own `lookup`, so the address connected to is the
 * address checked (no DNS-rebinding gap). Both refuse an answer that holds
 * any forbidden address: a name that mixes a public address with a private
 * one is a known rebinding trick, not a subscriber.
 */
import dns from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';

/** Which targets a webhook may reach besides public addresses (WEBHOOK_ALLOWED_TARGETS). */
export const TARGET_POLICIES = ['public', 'loopback', 'private'] as const;
export type TargetPolicy = (typeof TARGET_POLICIES)[number];

export type AddressClass =
  | 'public'
  | 'loopback'
  | 'private'
  | 'metadata'
  | 'link-local'
  | 'unspecified'
  | 'multicast'
  | 'reserved';

/** Cloud metadata, link-local, unspecified, multicast and reserved are never allowed, under any policy. */
const allowedClasses: Record<TargetPolicy, ReadonlySet<AddressClass>> = {
  public: new Set(['public']),
  loopback: new Set(['public', 'loopback']),
  private: new Set(['public', 'loopback', 'private']),
};

/** Checked in this order; the first class whose ranges hold the address wins. */
const ranges: [AddressClass, string[]][] = [
  // Cloud metadata and credential services, first: some sit inside ranges the
  // "private" policy allows (CGNAT, unique-local) or look public (Azure).
  [
    'metadata',
    [
      '169.254.169.254/32', // AWS, GCP, Azure, OCI, OpenStack, DigitalOcean, Hetzner...
      '169.254.170.2/32', // AWS ECS task metadata and credentials
      '169.254.170.23/32', // AWS EKS Pod Identity agent
      '169.254.0.23/32', // Tencent Cloud
      '100.100.100.200/32', // Alibaba Cloud (inside CGNAT 100.64.0.0/10)
      '168.63.129.16/32', // Azure WireServer (a public address)
      '192.0.0.192/32', // Oracle Cloud (legacy)
      'fd00:ec2::/32', // AWS Nitro IPv6 services: IMDS fd00:ec2::254, DNS ::253, NTP ::123, EKS ::23
    ],
  ],
  ['unspecified', ['0.0.0.0/8', '::/128']],
  ['loopback', ['127.0.0.0/8', '::1/128']],
  ['link-local', ['169.254.0.0/16', 'fe80::/10']],
  // RFC 1918, CGNAT (RFC 6598), unique-local and the deprecated site-local.
  [
    'private',
    ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', 'fc00::/7', 'fec0::/10'],
  ],
  ['multicast', ['224.0.0.0/4', 'ff00::/8']],
  // IETF protocol assignments, documentation, benchmarking, class E and
  // broadcast; IPv4-compatible IPv6, discard-only, Teredo, documentation.
  [
    'reserved',
    [
      '192.0.0.0/24',
      '192.0.2.0/24',
      '198.18.0.0/15',
      '198.51.100.0/24',
      '203.0.113.0/24',
      '240.0.0.0/4',
      '::/96',
      '100::/64',
      '2001::/32',
      '2001:db8::/32',
    ],
  ],
];

const lists = ranges.map(([cls, cidrs]): [AddressClass, BlockList] => {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [network = '', prefix = ''] = cidr.split('/');
    list.addSubnet(network, Number(prefix), isIP(network) === 6 ? 'ipv6' : 'ipv4');
  }
  return [cls, list];
});

/** The 16 bytes of an IPv6 address (which must be valid, e.g. checked with `isIP`). */
function ipv6Bytes(ip: string): number[] {
  let text = ip;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const [a = 0, b = 0, c = 0, d = 0] = dotted[1]!.split('.').map(Number);
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const groups = (s: string) => (s ? s.split(':') : []);
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const all = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return all.flatMap((g) => {
    const n = parseInt(g, 16);
    return [n >> 8, n & 0xff];
  });
}

/**
 * The IPv4 address an IPv6 address carries and routes to: IPv4-mapped
 * (::ffff:0:0/96), NAT64 (64:ff9b::/96) and 6to4 (2002::/16).
 */
function embeddedIpv4(ip: string): string | undefined {
  const b = ipv6Bytes(ip);
  const zero = (from: number, to: number) => b.slice(from, to).every((x) => x === 0);
  const quad = (at: number) => b.slice(at, at + 4).join('.');
  if (zero(0, 10) && b[10] === 0xff && b[11] === 0xff) return quad(12);
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zero(4, 12))
    return quad(12);
  if (b[0] === 0x20 && b[1] === 0x02) return quad(2);
  return undefined;
}

/** The class of an IP address (v4 or v6); throws when `ip` is not an IP address. */
export function classifyAddress(ip: string): AddressClass {
  const family = isIP(ip);
  if (family === 0) throw new TypeError(`"${ip}" is not an IP address`);
  if (family === 6) {
    const v4 = embeddedIpv4(ip);
    if (v4 !== undefined) return classifyAddress(v4);
  }
  const type = family === 6 ? 'ipv6' : 'ipv4';
  return lists.find(([, list]) => list.check(ip, type))?.[0] ?? 'public';
}

/** Whether `policy` lets a webhook connect to `ip`. */
export function isAllowedAddress(ip: string, policy: TargetPolicy): boolean {
  return allowedClasses[policy].has(classifyAddress(ip));
}

/** The classes no policy allows (kept in step with `allowedClasses`). */
const neverAllowed = (cls: AddressClass): boolean =>
  !Object.values(allowedClasses).some((allowed) => allowed.has(cls));

/** Why an address is refused, naming the host it came from and the policy when one could allow it. */
function refusalMessage(
  host: string,
  address: string,
  addressClass: AddressClass,
  policy: TargetPolicy,
): string {
  const what = addressClass === 'metadata' ? 'cloud metadata' : addressClass;
  const why = neverAllowed(addressClass)
    ? 'which webhooks may never reach'
    : `which the "${policy}" webhook target policy refuses (WEBHOOK_ALLOWED_TARGETS)`;
  return `${host === address ? address : `${host} resolves to ${address}`}, a ${what} address, ${why}`;
}

/** A webhook target the SSRF guard refuses; never worth retrying. */
export class TargetForbiddenError extends Error {
  override name = 'TargetForbiddenError';
  readonly code = 'ERR_WEBHOOK_TARGET_FORBIDDEN';
  constructor(
    readonly host: string,
    readonly address: string,
    readonly addressClass: AddressClass,
    policy: TargetPolicy,
  ) {
    super(refusalMessage(host, address, addressClass, policy));
  }
}

/** The URL's host without IPv6 brackets ("[::1]" → "::1"). */
export const hostOf = (url: URL): string => url.hostname.replace(/^\[(.*)\]$/, '$1');

/** Names that resolve to loopback by definition (RFC 6761), whatever DNS says. */
const LOOPBACK_NAME = /^(localhost|.+\.localhost)\.?$/i;

/**
 * Why the URL's host is refused without asking DNS, or undefined: decides
 * literal IPs and localhost names only (see `checkWebhookTarget` for names).
 */
export function refusalOfUrl(url: string | URL, policy: TargetPolicy): string | undefined {
  const host = hostOf(typeof url === 'string' ? new URL(url) : url);
  if (isIP(host)) return refusalOfAnswer(host, [{ address: host }], policy)?.message;
  if (LOOPBACK_NAME.test(host) && !allowedClasses[policy].has('loopback'))
    return new TargetForbiddenError(host, '127.0.0.1', 'loopback', policy).message;
  return undefined;
}

/**
 * The error for the first address of a DNS answer that `policy` refuses, or
 * undefined when it allows them all. One forbidden address refuses the whole
 * answer, at registration and at delivery alike.
 */
export function refusalOfAnswer(
  host: string,
  addresses: readonly { address: string }[],
  policy: TargetPolicy,
): TargetForbiddenError | undefined {
  const refused = addresses.find((a) => !isAllowedAddress(a.address, policy));
  return refused
    ? new TargetForbiddenError(host, refused.address, classifyAddress(refused.address), policy)
    : undefined;
}

/** Resolves a host name to all its addresses, as the HTTP client does before it connects. */
export type Resolver = (hostname: string, family: number) => Promise<dns.LookupAddress[]>;
export const systemResolver: Resolver = (hostname, family) =>
  dns.promises.lookup(hostname, { all: true, family });

/** How long registration waits for DNS. */
export const REGISTRATION_LOOKUP_TIMEOUT_MS = 5000;

/** getaddrinfo's answers that blame the name itself (EINVAL: a name too long for DNS). */
const UNRESOLVABLE_LOOKUP_CODES: ReadonlySet<string> = new Set([
  'ENOTFOUND',
  'ENODATA',
  'EINVAL',
  'EBADNAME',
]);

/** Why a webhook URL may not be registered. */
export type TargetRefusal =
  /** An address the policy refuses (or none at all): the caller's URL is at fault. */
  | { kind: 'forbidden' | 'unresolvable'; message: string }
  /** DNS did not answer in time or failed for now: worth trying again later. */
  | { kind: 'lookup-failed'; message: string };

/**
 * Checks a URL's host for registration: literal IPs and localhost names at
 * once, other names after resolving them (bounded by `timeoutMs`). Undefined
 * when every address is allowed. Delivery checks again at connect time.
 */
export async function checkWebhookTarget(
  url: string | URL,
  policy: TargetPolicy,
  resolve: Resolver = systemResolver,
  timeoutMs = REGISTRATION_LOOKUP_TIMEOUT_MS,
): Promise<TargetRefusal | undefined> {
  const literal = refusalOfUrl(url, policy);
  if (literal) return { kind: 'forbidden', message: literal };
  const host = hostOf(typeof url === 'string' ? new URL(url) : url);
  if (isIP(host) || LOOPBACK_NAME.test(host)) return undefined;

  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(Object.assign(new Error('timed out'), { code: 'ETIMEOUT' })),
      timeoutMs,
    );
  });
  let addresses: dns.LookupAddress[];
  try {
    addresses = await Promise.race([resolve(host, 0), timeout]);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'ERROR';
    // The name's fault (no such name, no address, or not a name DNS can carry: over 253
    // characters, a label over 63): a refusal. Anything else may pass later: a failure for now.
    return UNRESOLVABLE_LOOKUP_CODES.has(code)
      ? { kind: 'unresolvable', message: `${host} does not resolve to any address (${code})` }
      : { kind: 'lookup-failed', message: `the DNS lookup of ${host} failed (${code})` };
  } finally {
    clearTimeout(timer);
  }
  if (addresses.length === 0)
    return { kind: 'unresolvable', message: `${host} does not resolve to any address` };
  const refused = refusalOfAnswer(host, addresses, policy);
  return refused ? { kind: 'forbidden', message: refused.message } : undefined;
}

/**
 * A `lookup` for net/http/https that resolves as usual, then fails with a
 * TargetForbiddenError when any address is one the policy refuses.
 */
export function guardedLookup(
  policy: TargetPolicy,
  resolve: Resolver = systemResolver,
): LookupFunction {
  return (hostname, options, callback) => {
    const family =
      options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : Number(options.family ?? 0);
    resolve(hostname, family).then(
      (addresses) => {
        const refused = refusalOfAnswer(hostname, addresses, policy);
        const first = addresses[0];
        if (refused) callback(refused, '');
        else if (!first)
          callback(
            Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }),
            '',
          );
        else if (options.all) callback(null, addresses);
        else callback(null, first.address, first.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, ''),
    );
  };
}
