namespace Shepherd.Limits;

/// <summary>
/// The live counters of one virtual key, guarded by one lock so every check-and-reserve is a single atomic step.
/// </summary>
/// <remarks>
/// Requests per minute use an exact sliding log (a ring of the last N request times): with RPM N, never more than N
/// requests in any 60 s. Tokens per minute use a sliding log of reservations that settlement corrects to the real
/// count. Money is <c>decimal</c> USD: spend per budget window, outstanding reservations, and the credit balance.
/// </remarks>
public sealed class KeyRuntime
{
    internal readonly object Gate = new();

    // Requests-per-minute log: times (UTC ticks) of the requests in the window, oldest at _requestHead.
    internal long[] RequestLog = [];
    internal int RequestHead;
    internal int RequestCount;

    // Tokens-per-minute log, addressed by an ever-growing sequence number.
    internal TokenEntry[] TokenLog = [];
    internal long TokenHead;
    internal long TokenTail;
    internal long TokenSum;

    internal int InFlight;

    internal DateOnly Day;
    internal int Month;
    internal decimal SpentToday;
    internal decimal SpentThisMonth;
    internal decimal SpentTotal;

    /// <summary>Worst-case cost of the requests running now.</summary>
    internal decimal Reserved;

    /// <summary>Prepaid balance; null when the key is not credit-limited.</summary>
    internal decimal? Credit;

    internal struct TokenEntry
    {
        public long Ticks;
        public long Tokens;
    }

    /// <summary>A consistent copy of the counters, for the admin API.</summary>
    public KeyRuntimeSnapshot Snapshot()
    {
        lock (Gate)
        {
            return new KeyRuntimeSnapshot(InFlight, RequestCount, TokenSum, Day, SpentToday, SpentThisMonth, SpentTotal, Reserved, Credit);
        }
    }

    /// <summary>Sets the persisted spend and balance (at start-up or after a reload).</summary>
    public void Restore(DateOnly day, decimal today, decimal month, decimal total, decimal? credit)
    {
        lock (Gate)
        {
            Day = day;
            Month = BudgetCalendar.MonthIndex(day);
            SpentToday = today;
            SpentThisMonth = month;
            SpentTotal = total;
            Credit = credit;
        }
    }

    /// <summary>Adds to (or starts) the credit balance.</summary>
    public decimal TopUp(decimal amount)
    {
        lock (Gate)
        {
            Credit = (Credit ?? 0m) + amount;
            return Credit.Value;
        }
    }

    /// <summary>Removes the credit limit or starts it at a balance (admin update).</summary>
    public void SetCreditLimited(decimal? balance)
    {
        lock (Gate)
        {
            Credit = balance is null ? null : Credit ?? balance;
        }
    }
}

/// <summary>A key's live counters at one moment.</summary>
public readonly record struct KeyRuntimeSnapshot(
    int InFlight,
    int RequestsLastMinute,
    long TokensLastMinute,
    DateOnly Day,
    decimal SpentToday,
    decimal SpentThisMonth,
    decimal SpentTotal,
    decimal Reserved,
    decimal? CreditBalance);
