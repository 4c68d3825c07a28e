"""Lua scripts that apply one flush to Redis atomically, fenced by Kafka offset.

Both take one JSON argument. The fence is the hash ``<p>:offsets:<consumer>`` field
``<topic>:<partition>``: a flush whose first offset is not newer than the stored one is skipped
(returns ``{-1, stored}``), so a replayed batch never counts twice.
Redis runs Lua 5.1 (no ``goto``); numbers stay below 2^53 so they convert exactly.
"""

from __future__ import annotations

LIVE_FLUSH = r"""
local b = cjson.decode(ARGV[1])
local p = b.p
local offkey = p .. ':offsets:' .. b.c
local cur = redis.call('HGET', offkey, b.tp)
if cur and tonumber(cur) >= tonumber(b.first) then return {-1, tonumber(cur)} end
for s, fields in pairs(b.inc) do
  local k = p .. ':live:' .. s .. ':counts'
  for f, n in pairs(fields) do redis.call('HINCRBY', k, f, n) end
end
for s, prods in pairs(b.pc) do
  local k = p .. ':live:' .. s .. ':products'
  for pid, n in pairs(prods) do redis.call('HINCRBY', k, 'clicks|' .. pid, n) end
end
local dups = 0
for _, e in ipairs(b.ev) do
  if not redis.call('SET', p .. ':dedup:' .. e[1], '1', 'NX', 'EX', b.ttl) then
    dups = dups + 1
    if e[2] ~= '' and e[3] ~= '' then
      redis.call('HINCRBY', p .. ':live:' .. e[2] .. ':counts', e[3], -1)
      if e[4] ~= '' then redis.call('HINCRBY', p .. ':live:' .. e[2] .. ':products', 'clicks|' .. e[4], -1) end
    end
  end
end
for s, vs in pairs(b.uv) do
  local k = p .. ':live:' .. s .. ':viewers'
  for i = 1, #vs, 1000 do redis.call('SADD', k, unpack(vs, i, math.min(i + 999, #vs))) end
end
for s, vs in pairs(b.vw) do
  local nk = p .. ':live:' .. s .. ':now'
  local lk = p .. ':live:' .. s .. ':left'
  for _, v in ipairs(vs) do
    if v[3] > 0 then redis.call('ZADD', lk, 'GT', v[3], v[1]) end
    if v[2] > 0 then redis.call('ZADD', nk, 'GT', v[2], v[1]) end
    local l = redis.call('ZSCORE', lk, v[1])
    if l then
      local n = redis.call('ZSCORE', nk, v[1])
      if n and tonumber(n) <= tonumber(l) then redis.call('ZREM', nk, v[1]) end
    end
  end
  local ts = b.ts[s]
  redis.call('ZREMRANGEBYSCORE', nk, '-inf', '(' .. (ts - 120000))
  redis.call('ZREMRANGEBYSCORE', lk, '-inf', '(' .. (ts - 120000))
  local cnt = redis.call('ZCOUNT', nk, ts - 60000, '+inf')
  local ck = p .. ':live:' .. s .. ':counts'
  local peak = tonumber(redis.call('HGET', ck, 'peak_viewers') or '0')
  if cnt > peak then redis.call('HSET', ck, 'peak_viewers', cnt) end
end
for _, s in ipairs(b.streams) do redis.call('HSET', p .. ':live:' .. s .. ':counts', 'updated_at', b.now) end
local sk = p .. ':stats'
for f, n in pairs(b.st) do redis.call('HINCRBY', sk, f, n) end
redis.call('HINCRBY', sk, 'events_accepted', b.valid - dups)
redis.call('HINCRBY', sk, 'events_deduplicated', dups)
redis.call('HSET', offkey, b.tp, b.last)
return {dups, 0}
"""

# Used by LEDGER_STEP: apply order snapshots (newer version only), replacing the old
# contribution of the order by the new one in every aggregate. Expects ``p`` and ``b`` (with ``snaps``).
_LEDGER_APPLY = r"""
local touched = {}
local function hinc(k, f, n) if n ~= 0 then redis.call('HINCRBY', k, f, n) end end
local function apply(s, sign)
  local c = s.currency
  local bs = p .. ':brand:' .. s.brand_id .. ':sales'
  hinc(bs, c .. '|orders', sign)
  hinc(bs, c .. '|net_minor', sign * s.net_minor)
  if s.creator_id then
    hinc(bs, c .. '|attributed_orders', sign)
    hinc(bs, c .. '|attributed_net_minor', sign * s.net_minor)
    hinc(bs, c .. '|commission_minor', sign * s.commission_minor)
    local groups = {{p .. ':creator:' .. s.creator_id .. ':earnings', ''}}
    if s.campaign_id then
      groups[#groups + 1] = {p .. ':creator:' .. s.creator_id .. ':by_campaign', s.campaign_id .. '|'}
    end
    if s.via == 'click' and s.stream_id then
      groups[#groups + 1] = {p .. ':creator:' .. s.creator_id .. ':by_stream', s.stream_id .. '|'}
    end
    for _, g in ipairs(groups) do
      hinc(g[1], g[2] .. c .. '|orders', sign)
      hinc(g[1], g[2] .. c .. '|net_minor', sign * s.net_minor)
      hinc(g[1], g[2] .. c .. '|commission_minor', sign * s.commission_minor)
      hinc(g[1], g[2] .. c .. '|reversed_minor', sign * s.reversed_minor)
    end
  end
  if s.via == 'click' and s.stream_id then
    local ck = p .. ':live:' .. s.stream_id .. ':counts'
    hinc(ck, 'orders', sign)
    hinc(ck, 'gmv|' .. c, sign * s.net_minor)
    local pk = p .. ':live:' .. s.stream_id .. ':products'
    for _, sku in ipairs(s.skus) do hinc(pk, 'orders|' .. sku, sign) end
    touched[s.stream_id] = true
  end
end
for _, s in ipairs(b.snaps) do
  local ok = p .. ':order:' .. s.brand_id .. ':' .. s.order_id
  local raw = redis.call('GET', ok)
  local old = nil
  if raw then old = cjson.decode(raw) end
  if (not old) or old.version < s.version then
    if old then apply(old, -1) end
    apply(s, 1)
    redis.call('SET', ok, cjson.encode(s))
  end
end
"""

_LEDGER_FINISH = r"""
local sk = p .. ':stats'
for f, n in pairs(b.st) do redis.call('HINCRBY', sk, f, n) end
local out = {}
for s, _ in pairs(touched) do
  redis.call('HSET', p .. ':live:' .. s .. ':counts', 'updated_at', b.now)
  out[#out + 1] = s
end
"""


# Check the fences this member loaded (compare-and-set) for every topic-partition of the step; abort
# with {-1, tp, stored} if one moved (another member owns the partition now). Shared by the ledger
# consumer's step and outbox scripts. ``b.fences`` = {"<topic>:<partition>": [expected, new]},
# expected -1 = no fence stored yet.
_FENCE_CHECK = r"""
local offkey = p .. ':offsets:' .. b.c
for tp, f in pairs(b.fences) do
  local cur = redis.call('HGET', offkey, tp)
  local n = -1
  if cur then n = tonumber(cur) end
  if n ~= tonumber(f[1]) then return {-1, tp, n} end
end
"""

LEDGER_STEP = r"""
-- One ledger step for one source partition (streams/ledger_consumer.py), atomically:
-- fence CAS, state HSET/HDEL, order snapshot contributions, stats, outbox RPUSH, new fences.
local b = cjson.decode(ARGV[1])
local p = b.p
""" + _FENCE_CHECK + r"""
local sp = p .. ':lstate:' .. b.part .. ':'
for _, e in ipairs(b.set) do redis.call('HSET', sp .. e[1], e[2], e[3]) end
for _, e in ipairs(b.del) do redis.call('HDEL', sp .. e[1], e[2]) end
""" + _LEDGER_APPLY + _LEDGER_FINISH + r"""
local ob = p .. ':loutbox:' .. b.part
for i = 1, #b.outbox, 1000 do redis.call('RPUSH', ob, unpack(b.outbox, i, math.min(i + 999, #b.outbox))) end
for tp, f in pairs(b.fences) do redis.call('HSET', offkey, tp, f[2]) end
return {1, out}
"""

OUTBOX_CLEAR = r"""
-- DEL the partition's outbox if the fences are still the ones this member holds ([expected, _]).
local b = cjson.decode(ARGV[1])
local p = b.p
""" + _FENCE_CHECK + r"""
redis.call('DEL', p .. ':loutbox:' .. b.part)
return {1}
"""
