namespace Shepherd.Server.Auth;

using Shepherd.Errors;
using Shepherd.Security;

/// <summary>Authenticates the master key. Virtual keys plug in through the same <see cref="ICallerAuthenticator"/> seam.</summary>
public sealed class MasterKeyAuthenticator(MasterKey masterKey) : ICallerAuthenticator
{
    private static readonly CallerResult Missing = CallerResult.Fail(GatewayError.Unauthorized(
        "You didn't provide an API key. Provide it in the Authorization header as 'Bearer <key>'."));

    private static readonly CallerResult Invalid = CallerResult.Fail(GatewayError.Unauthorized(
        "Incorrect API key provided. Check the key you are using."));

    private static readonly CallerResult Master = CallerResult.Ok(Caller.Master);

    public CallerResult Authenticate(ReadOnlySpan<char> token)
    {
        if (token.IsEmpty)
        {
            return Missing;
        }

        return masterKey.Matches(token) ? Master : Invalid;
    }
}
