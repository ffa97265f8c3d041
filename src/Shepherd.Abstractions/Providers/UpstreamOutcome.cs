namespace Shepherd.Providers;

using Shepherd.Errors;

/// <summary>The result of an upstream attempt: a value or a classified failure. Errors are values on the hot path.</summary>
public readonly struct UpstreamOutcome<T>
    where T : class
{
    private UpstreamOutcome(T? value, UpstreamFailure? failure)
    {
        Value = value;
        Failure = failure;
    }

    public T? Value { get; }

    public UpstreamFailure? Failure { get; }

    public bool IsSuccess => Failure is null;

    public static UpstreamOutcome<T> Success(T value) => new(value, null);

    public static UpstreamOutcome<T> Failed(UpstreamFailure failure) => new(null, failure);

    public static implicit operator UpstreamOutcome<T>(UpstreamFailure failure) => Failed(failure);
}
