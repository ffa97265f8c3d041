namespace Shepherd.Server.Http;

using System.Globalization;
using Microsoft.AspNetCore.Http;
using Shepherd.Limits;

/// <summary>OpenAI's <c>x-ratelimit-*</c> headers, for keys with an RPM or TPM limit.</summary>
public static class RateLimitHeaders
{
    public static void Write(HttpResponse response, RateLimitSnapshot snapshot)
    {
        if (response.HasStarted)
        {
            return;
        }

        var headers = response.Headers;
        if (snapshot.RequestLimit is { } requests)
        {
            headers["x-ratelimit-limit-requests"] = requests.ToString(CultureInfo.InvariantCulture);
            headers["x-ratelimit-remaining-requests"] = snapshot.RequestsRemaining.ToString(CultureInfo.InvariantCulture);
            headers["x-ratelimit-reset-requests"] = InMemoryLimiter.Duration(snapshot.RequestsReset);
        }

        if (snapshot.TokenLimit is { } tokens)
        {
            headers["x-ratelimit-limit-tokens"] = tokens.ToString(CultureInfo.InvariantCulture);
            headers["x-ratelimit-remaining-tokens"] = snapshot.TokensRemaining.ToString(CultureInfo.InvariantCulture);
            headers["x-ratelimit-reset-tokens"] = InMemoryLimiter.Duration(snapshot.TokensReset);
        }
    }
}
