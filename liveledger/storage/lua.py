"""Lua scripts that apply one flush to Redis atomically, fenced by Kafka offset.

Each takes one JSON argument that carries **every key name it touches**, built by
:mod:`liveledger.storage.redis_keys` (no key is assembled inside a script), all in one hash slot (the
source partition's tag), and the caller declares one of them in ``KEYS`` (the fence hash; the
erasure's stats hash) so a Redis Cluster routes the call to that slot's master. The fence is the hash
``offsets(partition, consumer)`` field ``<topic>:<partition>``: a live flush whose first offset is not newer
than the stored one is skipped (returns ``{-1, stored}``), so a replayed batch never counts twice;
the ledger step compare-and-sets its fences. Redis runs Lua 5.1 (no ``goto``); numbers stay below
2^53 so they convert exactly.
"""

from __future__ import annotations

# A flush whose first offset is not the stored fence + 1 is refused too ({-2, stored}: a gap), unless
# ``jump`` says the offsets in between are past the log start (streams/gate.py).
# b = {off, tp, first, last, jump, ttl (s; dttl ms wins), dttl, sttl (ms: viewer set / presence
#      TTL after the stream's last flush), valid, stats, now, st: {stat: n},
#      inc: [[key, field, n]]  (every counter of the batch, summed),
#      groups: [[[key, field], ...]]  (what one event added: subtracted again for a duplicate),
#      ev: [[dedup key, group position (1-based, 0: none)]],
#      streams: [{k: {c, v, n, l}, uv: [viewer], vw: [[viewer, seen, left]], ts}]  (presence, unique viewers),
#      creators: [[brand creators set, creator, conversion hash]]}
LIVE_FLUSH = r"""
local b = cjson.decode(ARGV[1])
local dttl = b.dttl or (b.ttl * 1000)
local cur = redis.call('HGET', b.off, b.tp)
if cur and tonumber(cur) >= tonumber(b.first) then return {-1, tonumber(cur)} end
if cur and tonumber(b.first) ~= tonumber(cur) + 1 and not b.jump then return {-2, tonumber(cur)} end
for _, e in ipairs(b.inc) do redis.call('HINCRBY', e[1], e[2], e[3]) end
local dups = 0
for _, e in ipairs(b.ev) do
  if not redis.call('SET', e[1], '1', 'NX', 'PX', dttl) then
    dups = dups + 1
    if e[2] > 0 then
      for _, a in ipairs(b.groups[e[2]]) do redis.call('HINCRBY', a[1], a[2], -1) end
    end
  end
end
for _, c in ipairs(b.creators) do
  redis.call('SADD', c[1], c[2])
  redis.call('HSET', c[3], 'updated_at', b.now)
end
for _, s in ipairs(b.streams) do
  local vs = s.uv
  if #vs > 0 then
    -- unique viewers are also counted in the counts hash, which outlives the (expiring) set
    if redis.call('HEXISTS', s.k.c, 'unique_viewers') == 0 then
      redis.call('HSET', s.k.c, 'unique_viewers', redis.call('SCARD', s.k.v))
    end
    local added = 0
    for i = 1, #vs, 1000 do added = added + redis.call('SADD', s.k.v, unpack(vs, i, math.min(i + 999, #vs))) end
    if added > 0 then redis.call('HINCRBY', s.k.c, 'unique_viewers', added) end
  end
  if #s.vw > 0 then
    local nk, lk = s.k.n, s.k.l
    for _, v in ipairs(s.vw) do
      if v[3] > 0 then redis.call('ZADD', lk, 'GT', v[3], v[1]) end
      if v[2] > 0 then redis.call('ZADD', nk, 'GT', v[2], v[1]) end
      local l = redis.call('ZSCORE', lk, v[1])
      if l then
        local n = redis.call('ZSCORE', nk, v[1])
        if n and tonumber(n) <= tonumber(l) then redis.call('ZREM', nk, v[1]) end
      end
    end
    redis.call('ZREMRANGEBYSCORE', nk, '-inf', '(' .. (s.ts - 120000))
    redis.call('ZREMRANGEBYSCORE', lk, '-inf', '(' .. (s.ts - 120000))
    local cnt = redis.call('ZCOUNT', nk, s.ts - 60000, '+inf')
    local peak = tonumber(redis.call('HGET', s.k.c, 'peak_viewers') or '0')
    if cnt > peak then redis.call('HSET', s.k.c, 'peak_viewers', cnt) end
  end
  redis.call('HSET', s.k.c, 'updated_at', b.now)
  if b.sttl then  -- viewer set and presence: until sttl ms after the stream's last flush
    redis.call('PEXPIRE', s.k.v, b.sttl)
    redis.call('PEXPIRE', s.k.n, b.sttl)
    redis.call('PEXPIRE', s.k.l, b.sttl)
  end
end
for f, n in pairs(b.st) do redis.call('HINCRBY', b.stats, f, n) end
redis.call('HINCRBY', b.stats, 'events_accepted', b.valid - dups)
redis.call('HINCRBY', b.stats, 'events_deduplicated', dups)
redis.call('HSET', b.off, b.tp, b.last)
return {dups, 0}
"""

# Used by LEDGER_STEP: apply order snapshots (newer version only), replacing the old contribution of
# the order by the new one in every aggregate. Each snapshot carries the keys of the aggregates it
# counts in (``s.k``: order ``o``, brand sales ``bs``, creator ``ce`` / by campaign ``cc`` / by stream
# ``cs``, the creator's conversion with the brand ``cv`` and the brand's creator set ``ci``, stream
# counts ``sc`` / products ``sp``), and is stored with them, so the old contribution
# is removed from exactly where it was added even when the order moved to another creator.
_LEDGER_APPLY = r"""
local touched = {}
local function hinc(k, f, n) if n ~= 0 then redis.call('HINCRBY', k, f, n) end end
local function apply(s, sign)
  local c, k = s.currency, s.k
  hinc(k.bs, c .. '|orders', sign)
  hinc(k.bs, c .. '|net_minor', sign * s.net_minor)
  if s.creator_id then
    hinc(k.bs, c .. '|attributed_orders', sign)
    hinc(k.bs, c .. '|attributed_net_minor', sign * s.net_minor)
    hinc(k.bs, c .. '|commission_minor', sign * s.commission_minor)
    local groups = {{k.ce, ''}}
    if s.campaign_id then groups[#groups + 1] = {k.cc, s.campaign_id .. '|'} end
    if s.via == 'click' and s.stream_id then groups[#groups + 1] = {k.cs, s.stream_id .. '|'} end
    for _, g in ipairs(groups) do
      hinc(g[1], g[2] .. c .. '|orders', sign)
      hinc(g[1], g[2] .. c .. '|net_minor', sign * s.net_minor)
      hinc(g[1], g[2] .. c .. '|commission_minor', sign * s.commission_minor)
      hinc(g[1], g[2] .. c .. '|reversed_minor', sign * s.reversed_minor)
    end
    -- the creator's conversion with this brand, in total and per stream / campaign / link
    local kind = s.via .. '_orders'
    local dims = {''}
    if s.stream_id then dims[#dims + 1] = 'stream|' .. s.stream_id .. '|' end
    if s.campaign_id then dims[#dims + 1] = 'campaign|' .. s.campaign_id .. '|' end
    if s.link_code then dims[#dims + 1] = 'link|' .. s.link_code .. '|' end
    if s.day then dims[#dims + 1] = 'day|' .. s.day .. '|' end
    for _, d in ipairs(dims) do
      hinc(k.cv, d .. 'orders', sign)
      hinc(k.cv, d .. kind, sign)
      hinc(k.cv, d .. 'gmv|' .. c, sign * s.net_minor)
      hinc(k.cv, d .. 'commission|' .. c, sign * s.commission_minor)
    end
    redis.call('HSET', k.cv, 'updated_at', b.now)
    if sign > 0 then
      redis.call('SADD', k.ci, s.creator_id)
      local last = tonumber(redis.call('HGET', k.cv, 'last_order_at') or '0')
      if s.occurred_ms and s.occurred_ms > last then redis.call('HSET', k.cv, 'last_order_at', s.occurred_ms) end
    end
  end
  if s.via == 'click' and s.stream_id then
    hinc(k.sc, 'orders', sign)
    hinc(k.sc, 'gmv|' .. c, sign * s.net_minor)
    for _, sku in ipairs(s.skus) do hinc(k.sp, 'orders|' .. sku, sign) end
    if s.lines then
      for sku, amount in pairs(s.lines) do hinc(k.sp, 'revenue|' .. sku .. '|' .. c, sign * amount) end
    end
    touched[s.stream_id] = k.sc
  end
end
for _, s in ipairs(b.snaps) do
  local raw = redis.call('GET', s.k.o)
  local old = nil
  if raw then old = cjson.decode(raw) end
  if (not old) or old.version < s.version then
    if old then apply(old, -1) end
    apply(s, 1)
    redis.call('SET', s.k.o, cjson.encode(s))
  end
end
"""

_LEDGER_FINISH = r"""
for f, n in pairs(b.st) do redis.call('HINCRBY', b.stats, f, n) end
local out = {}
for s, ck in pairs(touched) do
  redis.call('HSET', ck, 'updated_at', b.now)
  out[#out + 1] = s
end
"""

# Check the fences this member loaded (compare-and-set) for every topic-partition of the step; abort
# with {-1, tp, stored} if one moved (another member owns the partition now). Shared by the ledger
# consumer's step and outbox scripts. ``b.fences`` = {"<topic>:<partition>": [expected, new]},
# expected -1 = no fence stored yet.
_FENCE_CHECK = r"""
for tp, f in pairs(b.fences) do
  local cur = redis.call('HGET', b.off, tp)
  local n = -1
  if cur then n = tonumber(cur) end
  if n ~= tonumber(f[1]) then return {-1, tp, n} end
end
"""

# b = {off, stats, ob (outbox list), fences, hset: [[hash, field, json]] (orders), hdel: [[hash, field]],
#      sset: [[key, json, ttl ms]] (expiring entries: clicks, waiting, seen, pending), sdel: [key],
#      snaps, st, outbox: [json], now}
LEDGER_STEP = r"""
-- One ledger step for one source partition (streams/ledger_path.py), atomically:
-- fence CAS, state HSET/HDEL, order snapshot contributions, stats, outbox RPUSH, new fences.
local b = cjson.decode(ARGV[1])
""" + _FENCE_CHECK + r"""
for _, e in ipairs(b.hset) do redis.call('HSET', e[1], e[2], e[3]) end
for _, e in ipairs(b.hdel) do redis.call('HDEL', e[1], e[2]) end
for _, e in ipairs(b.sset) do redis.call('SET', e[1], e[2], 'PX', e[3]) end
for _, k in ipairs(b.sdel) do redis.call('DEL', k) end
""" + _LEDGER_APPLY + _LEDGER_FINISH + r"""
for i = 1, #b.outbox, 1000 do redis.call('RPUSH', b.ob, unpack(b.outbox, i, math.min(i + 999, #b.outbox))) end
for tp, f in pairs(b.fences) do redis.call('HSET', b.off, tp, f[2]) end
return {1, out}
"""

OUTBOX_CLEAR = r"""
-- DEL the partition's outbox if the fences are still the ones this member holds ([expected, _]).
local b = cjson.decode(ARGV[1])
""" + _FENCE_CHECK + r"""
redis.call('DEL', b.ob)
return {1}
"""

# Right to erasure (api/privacy_routes.py): a viewer id leaves every stream of its brand while the
# counts stay. In each stream's viewers SET and presence ZSETs (``now``, ``left``) the id is replaced
# by this erasure's placeholder (one per request, so SCARD / ZCOUNT are unchanged even when the same
# viewer is erased twice), keeping the presence score; the counters ``st`` go to ``stats``.
# b = {id, ph, streams: [[viewers set, now zset, left zset]], stats, st: {field: n}} -> ids replaced
VIEWER_ERASE = r"""
local b = cjson.decode(ARGV[1])
local replaced = 0
for _, s in ipairs(b.streams) do
  if redis.call('SREM', s[1], b.id) == 1 then
    redis.call('SADD', s[1], b.ph)
    replaced = replaced + 1
  end
  for i = 2, 3 do
    local score = redis.call('ZSCORE', s[i], b.id)
    if score then
      redis.call('ZREM', s[i], b.id)
      redis.call('ZADD', s[i], score, b.ph)
      replaced = replaced + 1
    end
  end
end
for f, n in pairs(b.st) do redis.call('HINCRBY', b.stats, f, n) end
redis.call('HINCRBY', b.stats, 'viewer_ids_erased', replaced)
return replaced
"""
