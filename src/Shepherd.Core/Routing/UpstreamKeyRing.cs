namespace Shepherd.Routing;

using Shepherd.Resilience;

/// <summary>One upstream key of a provider, with its health: its breaker, a cool-down after 429s, and whether it was
/// refused (bad credential) and is out until a health probe re-admits it.</summary>
public sealed class UpstreamKey
{
    private long _coolingUntilTicks;
    private long _deadSinceTicks;

    internal UpstreamKey(string secret, int index, string id, ICircuitBreaker breaker)
    {
        Secret = secret;
        Index = index;
        Id = id;
        Breaker = breaker;
    }

    /// <summary>The key itself: handed only to the adapter, never logged or shown.</summary>
    internal string Secret { get; }

    public int Index { get; }

    /// <summary><c>provider#index</c>: how the key is named in logs, health and the admin API.</summary>
    public string Id { get; }

    public ICircuitBreaker Breaker { get; }

    /// <summary>Where a change of this key's health is shared with other instances (null: this instance only).</summary>
    internal IUpstreamKeyHealth? Health { get; set; }

    public bool IsDead => Volatile.Read(ref _deadSinceTicks) != 0;

    public DateTimeOffset? DeadSince => IsDead ? new DateTimeOffset(Volatile.Read(ref _deadSinceTicks), TimeSpan.Zero) : null;

    public DateTimeOffset? CoolingUntil(DateTimeOffset now)
    {
        var until = Volatile.Read(ref _coolingUntilTicks);
        return until > now.UtcTicks ? new DateTimeOffset(until, TimeSpan.Zero) : null;
    }

    public bool IsUsable(DateTimeOffset now) =>
        !IsDead && Volatile.Read(ref _coolingUntilTicks) <= now.UtcTicks && Breaker.IsAvailable(now);

    /// <summary>The upstream refused this key (401/403): out until a probe succeeds.</summary>
    public void MarkDead(DateTimeOffset now)
    {
        if (Interlocked.CompareExchange(ref _deadSinceTicks, now.UtcTicks, 0) == 0)
        {
            Health?.Changed(this, now);
        }
    }

    public void Readmit()
    {
        var wasDead = Interlocked.Exchange(ref _deadSinceTicks, 0) != 0;
        Volatile.Write(ref _coolingUntilTicks, 0);
        if (wasDead)
        {
            Health?.Changed(this, null);
        }
    }

    /// <summary>Applies what another instance found (taken out since <paramref name="deadSince"/>, or re-admitted when null), without sharing it again.</summary>
    public void ApplyShared(DateTimeOffset? deadSince)
    {
        if (deadSince is { } since)
        {
            Interlocked.CompareExchange(ref _deadSinceTicks, Math.Max(1, since.UtcTicks), 0);
        }
        else
        {
            Volatile.Write(ref _deadSinceTicks, 0);
        }
    }

    /// <summary>Rate limited: rest until <paramref name="until"/>.</summary>
    public void CoolUntil(DateTimeOffset until)
    {
        var ticks = until.UtcTicks;
        long current;
        do
        {
            current = Volatile.Read(ref _coolingUntilTicks);
            if (current >= ticks)
            {
                return;
            }
        }
        while (Interlocked.CompareExchange(ref _coolingUntilTicks, ticks, current) != current);
    }
}

/// <summary>The upstream keys of one provider, handed out round-robin among the usable ones.</summary>
/// <remarks>Keys come from configuration or the environment and never leave the process: they are not logged,
/// not returned, and <see cref="ToString"/> shows only how many there are.</remarks>
public sealed class UpstreamKeyRing
{
    private readonly UpstreamKey[] _keys;
    private uint _next;

    public UpstreamKeyRing(IReadOnlyList<string> keys, string provider = "provider", IBreakerStore? breakers = null)
    {
        var store = breakers ?? new InMemoryBreakerStore(new Configuration.BreakerConfig());
        _keys = keys.Where(k => !string.IsNullOrEmpty(k))
            .Select((k, i) => new UpstreamKey(k, i, $"{provider}#{i}", store.Get($"key:{provider}#{i}")))
            .ToArray();
        if (store is IUpstreamKeyHealth health)
        {
            foreach (var key in _keys)
            {
                key.Health = health;
                health.Register(key);
            }
        }
    }

    public int Count => _keys.Length;

    public IReadOnlyList<UpstreamKey> Keys => _keys;

    /// <summary>The next usable key (round-robin), skipping <paramref name="exclude"/> (keys this request already tried).</summary>
    /// <returns>Null when no key is usable; <see cref="Keyless"/> for a provider without keys.</returns>
    public UpstreamKey? NextUsable(DateTimeOffset now, ulong exclude = 0)
    {
        if (_keys.Length == 0)
        {
            return exclude == 0 ? Keyless : null;
        }

        var start = Interlocked.Increment(ref _next);
        for (var i = 0; i < _keys.Length; i++)
        {
            var key = _keys[(int)((start + (uint)i) % (uint)_keys.Length)];
            if ((exclude & Bit(key.Index)) == 0 && key.IsUsable(now))
            {
                // Move the ring past the keys skipped, so the next caller starts after this one: otherwise the key
                // after an unusable one would take its turns too and carry twice the load of the others.
                if (i > 0)
                {
                    Interlocked.Add(ref _next, (uint)i);
                }

                return key;
            }
        }

        return null;
    }

    /// <summary>The bit of a key in an exclusion mask (keys beyond 63 share the last bit).</summary>
    public static ulong Bit(int index) => 1UL << Math.Min(index, 63);

    /// <summary>The stand-in for a provider that needs no key (a local vLLM, the simulator).</summary>
    public static readonly UpstreamKey Keyless = new(string.Empty, 0, "keyless", new CircuitBreaker(new Configuration.BreakerConfig()));

    /// <summary>Every configured key, for scrubbing upstream error messages.</summary>
    internal IEnumerable<string> All => _keys.Select(k => k.Secret);

    public override string ToString() => $"{_keys.Length} key(s)";
}
