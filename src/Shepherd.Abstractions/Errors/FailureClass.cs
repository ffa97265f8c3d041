namespace Shepherd.Errors;

/// <summary>What kind of failure an upstream answer was. Adapters classify; the executor decides what to do.</summary>
public enum FailureClass : byte
{
    /// <summary>The caller's request is wrong (400, 404, 422): returned as is, never retried.</summary>
    CallerFault,

    /// <summary>The gateway's upstream key was refused (401, 403).</summary>
    BadCredential,

    /// <summary>Rate limited or out of quota (429, 529, insufficient_quota).</summary>
    RateLimited,

    /// <summary>Connect errors, 408, 409, 5xx, malformed answers: worth another try.</summary>
    Transient,

    /// <summary>No answer within the configured time.</summary>
    Timeout,

    /// <summary>The prompt does not fit the model's context window.</summary>
    ContextOverflow,
}
