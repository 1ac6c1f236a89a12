//! [`Args`]: the view of a request's arguments that lookup and key
//! extraction need, so that this module does not depend on the codec's
//! request type (which implements it where both are known).

/// The arguments of one request; argument 0 is the command name.
pub trait Args {
    /// The number of arguments, the command name included.
    fn argc(&self) -> usize;
    /// Argument `i`, or None past the end.
    fn arg(&self, i: usize) -> Option<&[u8]>;
}

impl<T: AsRef<[u8]>> Args for [T] {
    fn argc(&self) -> usize {
        self.len()
    }
    fn arg(&self, i: usize) -> Option<&[u8]> {
        self.get(i).map(AsRef::as_ref)
    }
}

impl<T: AsRef<[u8]>, const N: usize> Args for [T; N] {
    fn argc(&self) -> usize {
        N
    }
    fn arg(&self, i: usize) -> Option<&[u8]> {
        self.get(i).map(AsRef::as_ref)
    }
}

impl<T: AsRef<[u8]>> Args for Vec<T> {
    fn argc(&self) -> usize {
        self.len()
    }
    fn arg(&self, i: usize) -> Option<&[u8]> {
        self.get(i).map(AsRef::as_ref)
    }
}

impl<A: Args + ?Sized> Args for &A {
    fn argc(&self) -> usize {
        (**self).argc()
    }
    fn arg(&self, i: usize) -> Option<&[u8]> {
        (**self).arg(i)
    }
}

impl Args for resp::Request {
    #[inline]
    fn argc(&self) -> usize {
        resp::Request::argc(self)
    }
    #[inline]
    fn arg(&self, i: usize) -> Option<&[u8]> {
        resp::Request::arg(self, i)
    }
}
