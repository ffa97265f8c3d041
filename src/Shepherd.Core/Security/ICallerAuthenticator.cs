namespace Shepherd.Security;

using Shepherd.Errors;

/// <summary>Turns the presented bearer token into a <see cref="Caller"/>, or says why not.</summary>
public interface ICallerAuthenticator
{
    /// <summary>Authenticates a token (the part after <c>Bearer </c>); <paramref name="token"/> is empty when none was given.</summary>
    /// <returns>The caller, or an error (401) that never echoes the token.</returns>
    CallerResult Authenticate(ReadOnlySpan<char> token);
}

public readonly struct CallerResult
{
    private CallerResult(Caller? caller, GatewayError? error)
    {
        Caller = caller;
        Error = error;
    }

    public Caller? Caller { get; }

    public GatewayError? Error { get; }

    public static CallerResult Ok(Caller caller) => new(caller, null);

    public static CallerResult Fail(GatewayError error) => new(null, error);
}
