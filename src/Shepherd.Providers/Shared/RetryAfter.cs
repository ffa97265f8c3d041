namespace Shepherd.Providers.Shared;

using System.Globalization;
using System.Net.Http.Headers;

/// <summary>Reads <c>retry-after-ms</c> (milliseconds) and <c>retry-after</c> (seconds or an HTTP date).</summary>
public static class RetryAfter
{
    private static readonly TimeSpan Max = TimeSpan.FromHours(1);

    public static TimeSpan? From(HttpResponseHeaders headers, DateTimeOffset now)
    {
        if (headers.TryGetValues("retry-after-ms", out var ms) &&
            double.TryParse(ms.FirstOrDefault(), NumberStyles.Float, CultureInfo.InvariantCulture, out var milliseconds) &&
            milliseconds >= 0)
        {
            return Clamp(TimeSpan.FromMilliseconds(milliseconds));
        }

        if (headers.RetryAfter is { } retryAfter)
        {
            if (retryAfter.Delta is { } delta)
            {
                return Clamp(delta);
            }

            if (retryAfter.Date is { } date)
            {
                return Clamp(date - now);
            }
        }

        return null;
    }

    /// <summary>Parses Google's <c>"17s"</c> / <c>"1.5s"</c> durations (RetryInfo.retryDelay).</summary>
    public static TimeSpan? FromDuration(string? value)
    {
        if (string.IsNullOrEmpty(value) || !value.EndsWith('s'))
        {
            return null;
        }

        return double.TryParse(value.AsSpan(0, value.Length - 1), NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) && seconds >= 0
            ? Clamp(TimeSpan.FromSeconds(seconds))
            : null;
    }

    private static TimeSpan Clamp(TimeSpan value) => value < TimeSpan.Zero ? TimeSpan.Zero : value > Max ? Max : value;
}
