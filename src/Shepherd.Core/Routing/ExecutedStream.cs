namespace Shepherd.Routing;

using Shepherd.Chat;
using Shepherd.Errors;

/// <summary>
/// A committed stream: the chunks that came before the first content (replayed from copies), the first content
/// chunk, then the upstream as it arrives. Ending it releases the deployment's slot and reports mid-stream failures
/// to the deployment's breaker; disposing it cancels the upstream.
/// </summary>
internal sealed class ExecutedStream : ChatStream
{
    private readonly ChatStream _inner;
    private List<(byte[] Json, bool UsageOnly, Usage? Usage)>? _prelude;
    private readonly Action<UpstreamFailure?> _onEnd;
    private readonly AttemptCancellation _attempt;
    private int _preludeIndex;
    private bool _firstReturned;
    private StreamEvent _current;
    private UpstreamFailure? _failure;
    private bool _ended;

    public ExecutedStream(ChatStream inner, List<(byte[] Json, bool UsageOnly, Usage? Usage)> prelude, AttemptCancellation attempt, Action<UpstreamFailure?> onEnd)
    {
        _inner = inner;
        _prelude = prelude;
        _attempt = attempt;
        _onEnd = onEnd;
    }

    public override StreamEvent Current => _current;

    public override async ValueTask<bool> MoveNextAsync()
    {
        if (_prelude is { } prelude && _preludeIndex < prelude.Count)
        {
            var (json, usageOnly, usage) = prelude[_preludeIndex++];
            _current = StreamEvent.Chunk(json, hasContent: false, usage, usageOnly);
            return true;
        }

        if (!_firstReturned)
        {
            // The inner stream has not moved since priming: its current event is the first content chunk. The
            // prelude's copies are not needed any more (a stream can be held open for minutes).
            _firstReturned = true;
            _prelude = null;
            _current = _inner.Current;
            return true;
        }

        if (!await _inner.MoveNextAsync().ConfigureAwait(false))
        {
            End(null);
            return false;
        }

        _current = _inner.Current;
        if (_current.Kind == StreamEventKind.Error)
        {
            _failure = _current.Failure;
        }

        return true;
    }

    private void End(UpstreamFailure? failure)
    {
        if (!_ended)
        {
            _ended = true;
            _onEnd(failure);
        }
    }

    public override async ValueTask DisposeAsync()
    {
        await _inner.DisposeAsync().ConfigureAwait(false);
        End(_failure);
        _attempt.Dispose();
    }
}
