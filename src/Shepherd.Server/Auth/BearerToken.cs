namespace Shepherd.Server.Auth;

using Microsoft.AspNetCore.Http;

/// <summary>Finds the presented key: <c>Authorization: Bearer …</c>, or <c>x-api-key</c> (Anthropic-style clients).</summary>
public static class BearerToken
{
    public static ReadOnlySpan<char> From(HttpRequest request)
    {
        var authorization = request.Headers.Authorization;
        if (authorization.Count > 0)
        {
            var value = authorization[0].AsSpan().Trim();
            if (value.Length > 7 && value[..7].Equals("Bearer ", StringComparison.OrdinalIgnoreCase))
            {
                return value[7..].Trim();
            }

            return ReadOnlySpan<char>.Empty;
        }

        var apiKey = request.Headers["x-api-key"];
        return apiKey.Count > 0 ? apiKey[0].AsSpan().Trim() : ReadOnlySpan<char>.Empty;
    }
}
