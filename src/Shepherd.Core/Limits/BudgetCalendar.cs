namespace Shepherd.Limits;

/// <summary>
/// The calendar day and month that budgets count in: UTC by default, or a configured time zone. Caches the next
/// day boundary so the common case is one comparison.
/// </summary>
public sealed class BudgetCalendar
{
    private readonly TimeZoneInfo _zone;
    private readonly object _gate = new();
    private long _nextBoundaryTicks;
    private DateOnly _today;

    public BudgetCalendar(TimeZoneInfo zone)
    {
        _zone = zone;
    }

    public static BudgetCalendar Utc { get; } = new(TimeZoneInfo.Utc);

    public TimeZoneInfo Zone => _zone;

    /// <summary>The budget day of <paramref name="now"/>.</summary>
    public DateOnly Today(DateTimeOffset now)
    {
        if (now.UtcTicks < Volatile.Read(ref _nextBoundaryTicks))
        {
            return _today;
        }

        lock (_gate)
        {
            var local = TimeZoneInfo.ConvertTime(now, _zone);
            var day = DateOnly.FromDateTime(local.DateTime);
            var next = NextDayStart(day);

            // Only cache when "now" is in the current day (a fake clock may go back in tests).
            if (now < next && now >= StartOf(day))
            {
                _today = day;
                Volatile.Write(ref _nextBoundaryTicks, next.UtcTicks);
            }

            return day;
        }
    }

    /// <summary>When the budget day containing <paramref name="day"/> ends.</summary>
    public DateTimeOffset NextDayStart(DateOnly day) => StartOf(day.AddDays(1));

    /// <summary>When the budget month containing <paramref name="day"/> ends.</summary>
    public DateTimeOffset NextMonthStart(DateOnly day) => StartOf(new DateOnly(day.Year, day.Month, 1).AddMonths(1));

    public static int MonthIndex(DateOnly day) => (day.Year * 12) + day.Month - 1;

    private DateTimeOffset StartOf(DateOnly day)
    {
        var local = day.ToDateTime(TimeOnly.MinValue, DateTimeKind.Unspecified);
        return new DateTimeOffset(local, _zone.GetUtcOffset(local));
    }
}
